//! What operators poll: `/healthz`, `/readyz`, `/metrics`.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

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

/// `/healthz`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// Liveness: 200 as soon as the server listens.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = OK, description = "Up", body = Health))
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `/readyz`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready`, or `unavailable`.
    status: &'static str,
    /// Whether the database answers.
    database: bool,
    /// Whether Redis answers; `null` without Redis.
    #[schema(required = true)]
    redis: Option<bool>,
}

/// Readiness: the database (and Redis, when configured) answer.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = OK, description = "Ready", body = Readiness),
        (status = SERVICE_UNAVAILABLE, description = "Not ready, or shutting down", body = Readiness),
    )
)]
pub(crate) async fn readyz(State(ops): State<Arc<Ops>>) -> (StatusCode, Json<Readiness>) {
    let database = ops.db.ping().await;
    let redis = ops.fanout.ready();
    let ready = database && redis && !ops.stopping.is_cancelled();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        database,
        redis: ops.fanout.uses_redis().then_some(redis),
    };
    (status, Json(body))
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = OK, description = "Prometheus text exposition format", content_type = "text/plain", body = String))
)]
pub(crate) async fn metrics_text(State(ops): State<Arc<Ops>>) -> String {
    ops.metrics.render()
}
