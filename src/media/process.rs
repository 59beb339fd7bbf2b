//! What an upload is, from its bytes: the sniffed type, and for images the size, a thumbnail
//! and a re-encoded copy without metadata (EXIF, GPS). Runs on the blocking pool.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::error::MediaError;

/// Longest side of a thumbnail, in pixels.
pub(crate) const THUMBNAIL_PX: u32 = 320;

/// The type of `bytes` as their content says, if it can tell.
pub(crate) fn sniff(bytes: &[u8]) -> Option<&'static str> {
    infer::get(bytes).map(|kind| kind.mime_type())
}

/// An upload ready to store.
#[derive(Debug)]
pub(crate) struct Processed {
    /// What is served as the attachment itself.
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `(bytes, content type)` of the thumbnail, for images.
    pub thumbnail: Option<(Vec<u8>, &'static str)>,
}

fn image_format(content_type: &str) -> Option<ImageFormat> {
    match content_type {
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/png" => Some(ImageFormat::Png),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Prepares `bytes` of the sniffed `content_type`. Images are decoded (at most `max_pixels`,
/// checked from the header before any pixel is decoded), turned upright by their EXIF
/// orientation and re-encoded, which leaves every metadata block behind; GIFs, which carry no
/// EXIF, are kept as they are so that animations survive. Other types pass unchanged.
pub(crate) fn process(bytes: Vec<u8>, content_type: &'static str, max_pixels: u64) -> Result<Processed, MediaError> {
    let Some(format) = image_format(content_type) else {
        return Ok(Processed {
            bytes,
            content_type: content_type.to_string(),
            width: None,
            height: None,
            thumbnail: None,
        });
    };
    let reader = || {
        let mut reader = ImageReader::with_format(Cursor::new(&bytes[..]), format);
        let mut limits = Limits::default();
        // A decoder allocates about 4 bytes (RGBA8) per pixel, 8 for 16-bit images.
        limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 * 1024 * 1024));
        reader.limits(limits);
        reader
    };
    let (w, h) = reader().into_dimensions().map_err(|_| MediaError::BadImage)?;
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(MediaError::TooManyPixels { max: max_pixels });
    }
    let mut decoder = reader().into_decoder().map_err(|_| MediaError::BadImage)?;
    // A broken EXIF block must not refuse the picture: it is dropped anyway.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|_| MediaError::BadImage)?;
    image.apply_orientation(orientation);
    let served = match format {
        ImageFormat::Gif => bytes.clone(),
        ImageFormat::Jpeg => encode_jpeg(&image, 90)?,
        ImageFormat::WebP => encode(&DynamicImage::ImageRgba8(image.to_rgba8()), ImageFormat::WebP)?,
        _ => encode(&image, ImageFormat::Png)?,
    };
    // Never enlarged: a small picture is its own thumbnail.
    let small = if image.width() <= THUMBNAIL_PX && image.height() <= THUMBNAIL_PX {
        image.clone()
    } else {
        image.thumbnail(THUMBNAIL_PX, THUMBNAIL_PX)
    };
    let thumbnail = if small.color().has_alpha() {
        (
            encode(&DynamicImage::ImageRgba8(small.to_rgba8()), ImageFormat::Png)?,
            "image/png",
        )
    } else {
        (encode_jpeg(&small, 80)?, "image/jpeg")
    };
    Ok(Processed {
        bytes: served,
        content_type: content_type.to_string(),
        width: Some(image.width()),
        height: Some(image.height()),
        thumbnail: Some(thumbnail),
    })
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, MediaError> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, format)
        .map_err(|e| MediaError::Internal(anyhow::anyhow!("encoding {format:?}: {e}")))?;
    Ok(out.into_inner())
}

fn encode_jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&image.to_rgb8())
        .map_err(|e| MediaError::Internal(anyhow::anyhow!("encoding JPEG: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image::RgbaImage::new(width, height)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn pixels_are_counted_before_decoding() {
        let refused = process(png(200, 100), "image/png", 19_999).unwrap_err();
        assert!(matches!(refused, MediaError::TooManyPixels { max: 19_999 }));
        let done = process(png(200, 100), "image/png", 20_000).unwrap();
        assert_eq!((done.width, done.height), (Some(200), Some(100)));
        let (thumb, kind) = done.thumbnail.unwrap();
        assert_eq!(kind, "image/png", "transparency keeps a PNG thumbnail");
        let small = image::load_from_memory(&thumb).unwrap();
        assert_eq!((small.width(), small.height()), (200, 100), "never enlarged");
        let wide = process(png(1280, 640), "image/png", u64::MAX).unwrap();
        let small = image::load_from_memory(&wide.thumbnail.unwrap().0).unwrap();
        assert_eq!((small.width(), small.height()), (THUMBNAIL_PX, THUMBNAIL_PX / 2));
    }

    #[test]
    fn other_types_pass_unchanged() {
        let pdf = b"%PDF-1.4 tiny".to_vec();
        let done = process(pdf.clone(), "application/pdf", 1).unwrap();
        assert_eq!(done.bytes, pdf);
        assert!(done.thumbnail.is_none() && done.width.is_none());
    }
}
