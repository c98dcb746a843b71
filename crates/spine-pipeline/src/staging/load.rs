//! Parse and load together: the parser runs on a blocking thread, encodes rows for COPY there and
//! hands them in chunks of about 4 MiB through a bounded channel to COPY on the caller's
//! transaction, so memory stays constant and parsing and encoding overlap with the database's
//! work.

use std::io::Read;

use serde::Serialize;
use spine_store::TenantTx;
use spine_store::repos::staging::{
    COPY_CHUNK_BYTES, EncodedRows, ImportRow, RowEncoder, StagingCopy, StagingCounts, StagingTarget,
    record_batch_summary,
};
use uuid::Uuid;

use super::{ParseOptions, ParseSummary, StagedRow, StagingError, parse};

/// Chunks of encoded rows (each about [`COPY_CHUNK_BYTES`]) the channel holds before the parser
/// waits: enough to keep parsing while the database moves a chunk into `staging.import_rows`
/// (the parser encodes a chunk several times faster than the database loads it).
const CHANNEL_CHUNKS: usize = 2;

/// What [`stage`] did.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub counts: StagingCounts,
    pub summary: ParseSummary,
}

impl From<StagedRow> for ImportRow {
    fn from(row: StagedRow) -> Self {
        match row.outcome {
            Ok(payload) => ImportRow::Parsed { row_number: row.row_number, payload },
            Err(e) => ImportRow::Failed { row_number: row.row_number, raw_text: e.raw_text, error: e.message },
        }
    }
}

/// Parses `input` and COPYs its rows into `staging.import_rows` for the batch and file, then
/// records the counts and the parse summary on the batch (`status = 'staged'`). Runs inside
/// `tx` and does not commit. On `Err` some rows may already be in the transaction: the caller
/// must drop (roll back) it, which is what `?` does.
pub async fn stage<R: Read + Send + 'static>(
    tx: &mut TenantTx,
    import_batch_id: Uuid,
    source_file_id: Uuid,
    input: R,
    opts: ParseOptions,
) -> Result<StageReport, StagingError> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<EncodedRows, StagingError>>(CHANNEL_CHUNKS);
    let target = StagingTarget::of(tx, import_batch_id, source_file_id);
    let parser = tokio::task::spawn_blocking(move || -> Result<ParseSummary, StagingError> {
        let stopped = || StagingError::Join("the loader stopped".to_owned());
        let mut rows = parse(input, &opts)?;
        let mut encoder = RowEncoder::new(target);
        while let Some(encoded) = rows.encode_next(&mut encoder) {
            encoded?;
            if encoder.len() >= COPY_CHUNK_BYTES && sender.blocking_send(Ok(encoder.take())).is_err() {
                return Err(stopped());
            }
        }
        if !encoder.is_empty() && sender.blocking_send(Ok(encoder.take())).is_err() {
            return Err(stopped());
        }
        Ok(rows.into_summary())
    });
    let loaded = async {
        let mut copy = StagingCopy::begin(tx, import_batch_id, source_file_id).await?;
        while let Some(chunk) = receiver.recv().await {
            copy.push_encoded(chunk?).await?;
        }
        Ok::<_, StagingError>(copy.finish().await?)
    }
    .await;
    let parsed = parser.await.map_err(|e| StagingError::Join(e.to_string()))?;
    let (counts, summary) = match (loaded, parsed) {
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(counts), Ok(summary)) => (counts, summary),
    };
    let json = serde_json::to_value(&summary).map_err(|e| StagingError::Join(e.to_string()))?;
    record_batch_summary(tx, import_batch_id, counts, &json).await?;
    Ok(StageReport { counts, summary })
}
