//! What operators poll: `/healthz`, `/readyz`, `/metrics`.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::realtime::Fanout;
use crate::store::Db;

pub(crate) struct Ops {
    pub db: Db,
    pub fanout: Fanout,
    pub metrics: PrometheusHandle,
    /// Cancelled when shutdown begins: the instance is no longer ready for new work.
    pub stopping: CancellationToken,
}

/// The Prometheus recorder is process-global; several servers in one test process share it.
pub(crate) fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just stays unused.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    let database = ops.db.ping().await;
    let redis = ops.fanout.ready();
    let ready = database && redis && !ops.stopping.is_cancelled();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let redis = if ops.fanout.uses_redis() {
        json!(redis)
    } else {
        json!(null)
    };
    (
        status,
        Json(json!({ "status": if ready { "ready" } else { "unavailable" }, "database": database, "redis": redis })),
    )
        .into_response()
}

pub(crate) async fn metrics_text(State(ops): State<Arc<Ops>>) -> String {
    ops.metrics.render()
}
