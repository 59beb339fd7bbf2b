//! What an import did (or, dry, would do): counts per table and every refused row with its reason.

use std::fmt;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Rows read from Django (refused ones included).
    pub read: u64,
    /// Rows that were not in Causerie yet.
    pub new: u64,
    /// Rows already imported whose content changed.
    pub updated: u64,
    /// Rows already imported and unchanged (the overlap of the watermark, or every chat).
    pub unchanged: u64,
    /// Chats folded into the chat of their pair (duplicates of the series).
    pub merged: u64,
    pub refused: u64,
}

/// One row the import would not take, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The Django table (`chat_user`, `chat_chat`, `chat_message`, `fcm_django_fcmdevice`).
    pub table: &'static str,
    /// The row's id as Django has it.
    pub row: String,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.table, self.row, self.reason)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevicesOutcome {
    /// The Django database has no `fcm_django_fcmdevice` table.
    NoSourceTable,
    /// Counted, not written (dry run).
    DryRun,
    /// Causerie's `devices` table does not exist yet: read and checked, not written.
    NoTargetTable,
    Written(u64),
}

#[derive(Clone, Debug)]
pub struct Report {
    pub dry_run: bool,
    /// No watermark was found: every row was read.
    pub full_read: bool,
    pub users: TableCounts,
    pub chats: TableCounts,
    pub messages: TableCounts,
    pub devices: TableCounts,
    pub devices_outcome: DevicesOutcome,
    /// Messages already imported as unread that Django now has read without a newer
    /// `updatedAt` (a queryset update), found by the read-flag pass.
    pub marked_read: u64,
    pub refusals: Vec<Refusal>,
}

impl Report {
    pub fn new(dry_run: bool, full_read: bool) -> Report {
        Report {
            dry_run,
            full_read,
            users: TableCounts::default(),
            chats: TableCounts::default(),
            messages: TableCounts::default(),
            devices: TableCounts::default(),
            devices_outcome: DevicesOutcome::NoSourceTable,
            marked_read: 0,
            refusals: Vec::new(),
        }
    }

    pub fn refuse(&mut self, table: &'static str, row: impl Into<String>, reason: impl Into<String>) {
        let counts = match table {
            "chat_user" => &mut self.users,
            "chat_chat" => &mut self.chats,
            "chat_message" => &mut self.messages,
            _ => &mut self.devices,
        };
        counts.refused += 1;
        self.refusals.push(Refusal {
            table,
            row: row.into(),
            reason: reason.into(),
        });
    }

    /// The refusals of one table.
    pub fn refused_in(&self, table: &str) -> Vec<&Refusal> {
        self.refusals.iter().filter(|r| r.table == table).collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would import" } else { "imported" };
        let scope = if self.full_read {
            "every row"
        } else {
            "rows changed since the last import"
        };
        writeln!(
            f,
            "Django import ({scope}){}:",
            if self.dry_run { ", dry run: nothing written" } else { "" }
        )?;
        writeln!(
            f,
            "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "table", "read", "new", "updated", "unchanged", "merged", "refused"
        )?;
        for (name, c) in [
            ("users", &self.users),
            ("chats", &self.chats),
            ("messages", &self.messages),
            ("devices", &self.devices),
        ] {
            writeln!(
                f,
                "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name, c.read, c.new, c.updated, c.unchanged, c.merged, c.refused
            )?;
        }
        let marked = if self.dry_run {
            "would be marked read"
        } else {
            "marked read"
        };
        writeln!(
            f,
            "  messages read in Django since the last import without a new updatedAt: {} {marked}",
            self.marked_read
        )?;
        match &self.devices_outcome {
            DevicesOutcome::NoSourceTable => {
                writeln!(f, "  devices: the Django database has no fcm_django_fcmdevice table")?
            }
            DevicesOutcome::DryRun => writeln!(f, "  devices: {verb} {}", self.devices.new + self.devices.updated)?,
            DevicesOutcome::NoTargetTable => writeln!(
                f,
                "  devices: not written: Causerie's database has no devices table yet (re-run once it has)"
            )?,
            DevicesOutcome::Written(n) => writeln!(f, "  devices: {n} written")?,
        }
        if self.refusals.is_empty() {
            writeln!(f, "No row refused.")?;
        } else {
            writeln!(f, "Refused rows ({}):", self.refusals.len())?;
            for refusal in &self.refusals {
                writeln!(f, "  {refusal}")?;
            }
        }
        Ok(())
    }
}
