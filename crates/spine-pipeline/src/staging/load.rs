//! Parse and load together: the parser runs on a blocking thread and hands rows in chunks
//! through a bounded channel to COPY on the caller's transaction, so memory stays constant and
//! parsing overlaps with the database's work.

use std::io::Read;

use serde::Serialize;
use spine_store::TenantTx;
use spine_store::repos::staging::{ImportRow, StagingCopy, StagingCounts, record_batch_summary};
use uuid::Uuid;

use super::{ParseOptions, ParseSummary, StagedRow, StagingError, parse};

/// Rows per message on the channel.
const CHUNK_ROWS: usize = 1024;
/// Messages the channel holds before the parser waits.
const CHANNEL_CHUNKS: usize = 8;

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
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<ImportRow>>(CHANNEL_CHUNKS);
    let parser = tokio::task::spawn_blocking(move || -> Result<ParseSummary, StagingError> {
        let mut rows = parse(input, &opts)?;
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        for row in rows.by_ref() {
            chunk.push(ImportRow::from(row?));
            if chunk.len() == CHUNK_ROWS {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                if sender.blocking_send(full).is_err() {
                    return Err(StagingError::Join("the loader stopped".to_owned()));
                }
            }
        }
        if !chunk.is_empty() && sender.blocking_send(chunk).is_err() {
            return Err(StagingError::Join("the loader stopped".to_owned()));
        }
        Ok(rows.into_summary())
    });
    let loaded = async {
        let mut copy = StagingCopy::begin(tx, import_batch_id, source_file_id).await?;
        while let Some(chunk) = receiver.recv().await {
            for row in &chunk {
                copy.push(row).await?;
            }
        }
        copy.finish().await
    }
    .await;
    let parsed = parser.await.map_err(|e| StagingError::Join(e.to_string()))?;
    let (counts, summary) = match (loaded, parsed) {
        (Err(e), _) => return Err(e.into()),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(counts), Ok(summary)) => (counts, summary),
    };
    let json = serde_json::to_value(&summary).map_err(|e| StagingError::Join(e.to_string()))?;
    record_batch_summary(tx, import_batch_id, counts, &json).await?;
    Ok(StageReport { counts, summary })
}
