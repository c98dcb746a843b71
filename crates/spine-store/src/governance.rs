//! Reads the [`Snapshot`] that `spine governance check` judges: PostgreSQL's catalog (what exists)
//! and the qieos registry (what is declared), in one read-only repeatable-read transaction so both
//! sides describe the same moment.

use sqlx::PgPool;

use spine_core::governance::{CatalogColumn, CatalogTable, RegistryColumn, RegistrySchema, RegistryTable, Snapshot};

use crate::StoreError;

/// Every schema; the engine decides which ones are governed.
const SCHEMAS: &str = "SELECT nspname::text FROM pg_namespace ORDER BY 1";

/// Ordinary and partitioned tables outside PostgreSQL's own schemas, with their live columns in
/// `attnum` order. Partitions are left out: they are governed through their parent, which is
/// what gets registered and granted.
const TABLES: &str = r"
SELECT n.nspname::text, c.relname::text, c.relrowsecurity,
       coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '{}'),
       coalesce(array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '{}')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
GROUP BY n.nspname, c.relname, c.relrowsecurity
ORDER BY 1, 2";

/// True when all three registry tables exist (a fresh, unmigrated database has none).
const REGISTRY_EXISTS: &str = "SELECT to_regclass('qieos.schemas') IS NOT NULL
    AND to_regclass('qieos.tables') IS NOT NULL AND to_regclass('qieos.field_usages') IS NOT NULL";

const REGISTRY_SCHEMAS: &str = "SELECT schema_name, approved, creation_criteria, sensitivity_level
    FROM qieos.schemas ORDER BY schema_name";

const REGISTRY_TABLES: &str = "SELECT s.schema_name, t.table_name, t.status, t.sensitivity_level,
           t.source_of_truth_policy, t.naming_exception_reason, t.metadata_waiver_reason
    FROM qieos.tables t JOIN qieos.schemas s ON s.id = t.schema_id
    ORDER BY s.schema_name, t.table_name";

const REGISTRY_COLUMNS: &str = "SELECT schema_name, table_name, column_name FROM qieos.field_usages
    ORDER BY schema_name, table_name, column_name";

type TableRow = (String, String, bool, Vec<String>, Vec<String>);
type RegistryTableRow = (String, String, String, Option<String>, Option<String>, Option<String>, Option<String>);

/// Reads the catalog and the registry. When the registry tables do not exist yet, the registry
/// side is empty, so every table shows as unregistered rather than the read failing.
pub async fn snapshot(pool: &PgPool) -> Result<Snapshot, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;

    let catalog_schemas: Vec<String> = sqlx::query_scalar(SCHEMAS).fetch_all(&mut *tx).await?;
    let rows: Vec<TableRow> = sqlx::query_as(TABLES).fetch_all(&mut *tx).await?;
    let catalog_tables = rows
        .into_iter()
        .map(|(schema, name, rls_enabled, names, types)| CatalogTable {
            schema,
            name,
            rls_enabled,
            columns: names.into_iter().zip(types).map(|(name, data_type)| CatalogColumn { name, data_type }).collect(),
        })
        .collect();
    let mut snapshot = Snapshot { catalog_schemas, catalog_tables, ..Snapshot::default() };

    let registry_exists: bool = sqlx::query_scalar(REGISTRY_EXISTS).fetch_one(&mut *tx).await?;
    if registry_exists {
        let schemas: Vec<(String, bool, Vec<String>, Option<String>)> =
            sqlx::query_as(REGISTRY_SCHEMAS).fetch_all(&mut *tx).await?;
        snapshot.registry_schemas = schemas
            .into_iter()
            .map(|(name, approved, creation_criteria, sensitivity)| RegistrySchema {
                name,
                approved,
                creation_criteria,
                sensitivity,
            })
            .collect();

        let tables: Vec<RegistryTableRow> = sqlx::query_as(REGISTRY_TABLES).fetch_all(&mut *tx).await?;
        snapshot.registry_tables = tables
            .into_iter()
            .map(|(schema, name, status, sensitivity, source_of_truth, naming, waiver)| RegistryTable {
                schema,
                name,
                status,
                sensitivity,
                source_of_truth,
                naming_exception_reason: naming,
                metadata_waiver_reason: waiver,
            })
            .collect();

        let columns: Vec<(String, String, String)> = sqlx::query_as(REGISTRY_COLUMNS).fetch_all(&mut *tx).await?;
        snapshot.registry_columns =
            columns.into_iter().map(|(schema, table, column)| RegistryColumn { schema, table, column }).collect();
    }

    tx.commit().await?;
    Ok(snapshot)
}
