//! Files: upload (multipart or a raw streaming body), and the registered file with its versions.
//! Uploads run through registration (decision 0019): the bytes stream into the blob store, then
//! capture, file version, import batch and processing job are written in one ingest transaction.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use spine_core::auth::Scope;
use spine_core::error_code::ErrorCode;
use spine_pipeline::register::{Pending, RegisterError, Registrar};
use spine_store::repos::provenance;
use spine_store::repos::registration::{Arrival, Registered};
use tokio_util::io::StreamReader;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppPath, AppQuery, Auth};
use crate::state::AppState;

/// Options of an upload (query string; multipart uploads may also send a `profile` field).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// File name for a raw body (else taken from Content-Disposition, else `upload`).
    pub name: Option<String>,
    /// Import profile to use instead of detection (see `spine profiles`).
    pub profile: Option<String>,
}

fn registrar(state: &AppState) -> ApiResult<&Registrar> {
    state.registrar.as_ref().ok_or_else(|| ApiError::new(ErrorCode::Unavailable, "this process does not take uploads"))
}

fn register_error(e: RegisterError) -> ApiError {
    match e.too_large() {
        Some(limit) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the file is larger than the limit of {limit} bytes; nothing was kept"),
        )
        .with_details(json!({"limit_bytes": limit})),
        None => match e {
            RegisterError::Blob(spine_store::blob::BlobError::Input(io)) => {
                ApiError::new(ErrorCode::InvalidRequest, format!("reading the upload failed: {io}"))
            }
            RegisterError::Store(s) => s.into(),
            other => ApiError::internal("registration failed", other),
        },
    }
}

fn check_profile(profile: Option<&str>) -> ApiResult<()> {
    match profile {
        Some(p) if spine_pipeline::profiles::by_name(p).is_none() => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("unknown import profile {p:?}"),
        )
        .with_details(json!({"field": "profile", "known": spine_pipeline::profiles::builtin().iter().map(|p| &p.name).collect::<Vec<_>>()}))),
        _ => Ok(()),
    }
}

/// The file name in a `Content-Disposition: ...; filename="..."` header.
fn disposition_name(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    let (_, rest) = v.split_once("filename=")?;
    Some(rest.trim().trim_matches('"').to_owned()).filter(|s| !s.is_empty())
}

/// Upload one or more files.
#[utoipa::path(post, path = "/v1/files", tag = "files", params(UploadQuery),
    request_body(content_type = "multipart/form-data", description = "Files as multipart parts (each part with a filename is a file; an optional `profile` field), or any other Content-Type as one raw file."),
    responses((status = 202, description = "Registered: per file its file, version, batch and job ids, with links"),
              (status = 200, description = "Every file was a duplicate of bytes already registered"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    auth: Auth,
    AppQuery(q): AppQuery<UploadQuery>,
    req: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = auth.require_scope(Scope::IngestWrite)?;
    let reg = registrar(&state)?;
    check_profile(q.profile.as_deref())?;
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let arrival = |profile| Arrival {
        ingress_kind: "upload",
        source_key: "upload".into(),
        source_display_name: "Uploads (API)".into(),
        route: "/v1/files".into(),
        device_id: None,
        captured_by: auth.0.actor_ref(),
        profile,
    };
    let done = if is_multipart {
        let mut profile = q.profile.clone();
        let mut form = Multipart::from_request(req, &state)
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("bad multipart body: {}", e.body_text())))?;
        let pending = read_parts(reg, &mut form, &mut profile).await?;
        if let Err(e) = check_profile(profile.as_deref()) {
            reg.discard(pending).await;
            return Err(e);
        }
        if pending.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "the multipart body holds no file (parts need a filename)",
            ));
        }
        // The parts of one body are registered together or not at all.
        reg.register(tenant, &arrival(profile), pending).await.map_err(register_error)?
    } else {
        // One file: staged, then made durable and registered with the uploads arriving at the
        // same time (group commit, decision 0027).
        let name = q.name.clone().or_else(|| disposition_name(req.headers())).unwrap_or_else(|| "upload".into());
        let details = json!({"content_type": req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())});
        let body = req.into_body().into_data_stream().map_err(std::io::Error::other);
        let staged = reg.stage(&name, details, StreamReader::new(body)).await.map_err(register_error)?;
        let mut done = reg.commit(tenant, &arrival(q.profile.clone()), vec![staged]).await;
        vec![done.pop().unwrap_or(Err(RegisterError::GroupStopped)).map_err(register_error)?]
    };
    let status = if done.iter().all(|r| r.duplicate) { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(json!({"files": done.iter().map(item_json).collect::<Vec<_>>()}))))
}

async fn read_parts(reg: &Registrar, form: &mut Multipart, profile: &mut Option<String>) -> ApiResult<Vec<Pending>> {
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(pending),
            Err(e) => {
                reg.discard(pending).await;
                return Err(ApiError::new(ErrorCode::InvalidRequest, format!("bad multipart body: {}", e.body_text())));
            }
        };
        let Some(name) = field.file_name().map(str::to_owned) else {
            if field.name() == Some("profile") {
                match field.text().await {
                    Ok(t) if !t.trim().is_empty() => *profile = Some(t.trim().to_owned()),
                    Ok(_) => {}
                    Err(e) => {
                        reg.discard(pending).await;
                        return Err(ApiError::new(
                            ErrorCode::InvalidRequest,
                            format!("bad profile field: {}", e.body_text()),
                        ));
                    }
                }
            }
            continue;
        };
        let details = json!({"content_type": field.content_type(), "field": field.name()});
        let reader = StreamReader::new(field.map_err(std::io::Error::other));
        match reg.put(&name, details, reader).await {
            Ok(p) => pending.push(p),
            Err(e) => {
                reg.discard(pending).await;
                return Err(register_error(e));
            }
        }
    }
}

fn item_json(r: &Registered) -> Value {
    json!({
        "file_id": r.file_id, "version": r.version, "duplicate": r.duplicate, "capture_id": r.capture_id,
        "import_batch_id": r.import_batch_id, "job_id": r.job_id, "original_name": r.original_name,
        "sha256": r.sha256, "size_bytes": r.size, "media_type": r.media_type,
        "links": {
            "file": format!("/v1/files/{}", r.file_id),
            "batch": r.import_batch_id.map(|b| format!("/v1/batches/{b}")),
            "job": r.job_id.map(|j| format!("/v1/jobs/{j}")),
        },
    })
}

/// One registered file with all its versions.
#[utoipa::path(get, path = "/v1/files/{id}", tag = "files", params(("id" = Uuid, Path, description = "File id")),
    responses((status = 200, description = "The file and its versions"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(State(state): State<AppState>, auth: Auth, AppPath(id): AppPath<Uuid>) -> ApiResult<Json<Value>> {
    let tenant = auth.require_any_scope(&[Scope::RecordsRead, Scope::IngestWrite])?;
    let mut tx = state.store.tenant_tx(tenant).await?;
    let (file, versions) = provenance::file(&mut tx, id).await.map_err(|e| not_found(e, "file"))?;
    tx.commit().await?;
    Ok(Json(json!({"file": file, "versions": versions})))
}

/// An import batch: status, row counts, review counts and summary.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "files", params(("id" = Uuid, Path, description = "Import batch id")),
    responses((status = 200, description = "The batch"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn batch(State(state): State<AppState>, auth: Auth, AppPath(id): AppPath<Uuid>) -> ApiResult<Json<Value>> {
    let tenant = auth.require_any_scope(&[Scope::RecordsRead, Scope::IngestWrite, Scope::ReviewWrite])?;
    let mut tx = state.store.tenant_tx(tenant).await?;
    let b = provenance::batch(&mut tx, id).await.map_err(|e| not_found(e, "import batch"))?;
    tx.commit().await?;
    Ok(Json(serde_json::to_value(b).map_err(|e| ApiError::internal("batch json", e))?))
}

pub(crate) fn not_found(e: spine_store::StoreError, what: &str) -> ApiError {
    match e {
        spine_store::StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}
