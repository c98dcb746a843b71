//! Read-only access to the qieos registry: schemas, tables, fields with their usages.

use serde_json::Value;
use uuid::Uuid;

use crate::{ReadTx, StoreError};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SchemaRow {
    pub id: Uuid,
    pub schema_name: String,
    pub owning_module: String,
    pub purpose: String,
    pub status: String,
    pub sensitivity_level: Option<String>,
    pub approved: bool,
    pub creation_criteria: Vec<String>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TableRow {
    pub id: Uuid,
    pub schema_name: String,
    pub table_name: String,
    pub purpose: String,
    pub owner: String,
    pub status: String,
    pub sensitivity_level: Option<String>,
    pub source_of_truth_policy: Option<String>,
    pub naming_exception_reason: Option<String>,
    pub metadata_waiver_reason: Option<String>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FieldRow {
    pub id: Uuid,
    pub field_key: String,
    pub display_name: String,
    pub description: String,
    pub data_type: String,
    pub canonical_format: Option<String>,
    pub sensitivity_level: String,
    pub allowed_values: Option<Vec<String>>,
    /// JSON array of {schema_name, table_name, column_name, data_type, is_required, is_unique, is_indexed, default_value, usage_notes}.
    pub usages: Value,
}

pub async fn schemas(tx: &mut ReadTx) -> Result<Vec<SchemaRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, schema_name, owning_module, purpose, status, sensitivity_level, approved, creation_criteria
         FROM qieos.schemas ORDER BY schema_name",
    )
    .fetch_all(tx.conn())
    .await?)
}

pub async fn tables(tx: &mut ReadTx, schema: Option<&str>) -> Result<Vec<TableRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.id, s.schema_name, t.table_name, t.purpose, t.owner, t.status, t.sensitivity_level,
                t.source_of_truth_policy, t.naming_exception_reason, t.metadata_waiver_reason
         FROM qieos.tables t JOIN qieos.schemas s ON s.id = t.schema_id
         WHERE $1::text IS NULL OR s.schema_name = $1
         ORDER BY s.schema_name, t.table_name",
    )
    .bind(schema)
    .fetch_all(tx.conn())
    .await?)
}

/// Fields, optionally only those used in one schema (and table).
pub async fn fields(tx: &mut ReadTx, schema: Option<&str>, table: Option<&str>) -> Result<Vec<FieldRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT f.id, f.field_key, f.display_name, f.description, f.data_type, f.canonical_format, f.sensitivity_level,
                f.allowed_values,
                coalesce(jsonb_agg(jsonb_build_object(
                    'schema_name', u.schema_name, 'table_name', u.table_name, 'column_name', u.column_name,
                    'data_type', u.data_type, 'is_required', u.is_required, 'is_unique', u.is_unique,
                    'is_indexed', u.is_indexed, 'default_value', u.default_value, 'usage_notes', u.usage_notes)
                    ORDER BY u.schema_name, u.table_name, u.column_name) FILTER (WHERE u.id IS NOT NULL), '[]') AS usages
         FROM qieos.fields f
         LEFT JOIN qieos.field_usages u ON u.field_id = f.id
              AND ($1::text IS NULL OR u.schema_name = $1) AND ($2::text IS NULL OR u.table_name = $2)
         GROUP BY f.id
         HAVING ($1::text IS NULL AND $2::text IS NULL) OR count(u.id) > 0
         ORDER BY f.field_key",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(tx.conn())
    .await?)
}
