-- Registration and processing write qinexus.files, import_files and import_batches once or
-- twice per file; two costs of those writes go (issue 4's upload target, bench/README.md).

-- qinexus.files had two indexes on (tenant_id, source_id, original_name): the plain one from
-- 20261122000003 and the unique files_source_name that registration added in 20261122000015
-- (decision 0019). Every file insert and every non-HOT update maintained both; the unique one
-- serves every lookup the plain one did.
DROP INDEX qinexus.files_tenant_id_source_id_original_name_idx;

-- As for qiserver.jobs (20261122000024): a statement that sets updated_at itself (the
-- processing step's) skips the PL/pgSQL call per row; every other update is touched as before.
DROP TRIGGER touch_updated_at ON qinexus.files;
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON qinexus.files FOR EACH ROW
    WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at) EXECUTE FUNCTION core.touch_updated_at();
DROP TRIGGER touch_updated_at ON qinexus.import_files;
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON qinexus.import_files FOR EACH ROW
    WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at) EXECUTE FUNCTION core.touch_updated_at();
DROP TRIGGER touch_updated_at ON qinexus.import_batches;
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON qinexus.import_batches FOR EACH ROW
    WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at) EXECUTE FUNCTION core.touch_updated_at();
