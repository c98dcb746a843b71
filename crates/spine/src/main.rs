//! The `spine` binary: CLI, config and telemetry wiring. No business logic lives here.

mod cli;
mod commands;
mod config;
mod db;
mod error;
mod output;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;
use spine_store::Store;

use cli::{BenchCmd, Cli, Command, ConfigCmd, GovernanceCmd, KeyCmd, TenantCmd, UserCmd};
use config::Settings;
use db::Database;
use error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            return fail(
                CliError::config(format!("configuration: {e}")).hint("see the configuration table in README.md"),
            );
        }
    };
    if let Err(e) = telemetry::init(&settings.log, std::io::stderr) {
        return fail(CliError::config(e));
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(CliError::failed(format!("starting the runtime: {e}"))),
    };
    match rt.block_on(run(cli.command, settings)) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn fail(e: CliError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(u8::try_from(e.exit_code).unwrap_or(1))
}

async fn run(command: Command, settings: Settings) -> Result<ExitCode, CliError> {
    match command {
        Command::Up(args) => commands::up::run(settings, args.listen).await.map(|_| ExitCode::SUCCESS),
        Command::Openapi => {
            output::text(&spine_api::openapi::document());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCmd::Show { json }) => {
            if json {
                output::json(&settings);
            } else {
                output::text(&serde_json::to_string_pretty(&settings).unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCmd::Blobs(args)) => commands::bench_blobs::run(&settings, args).await,
        Command::Profiles { json } => {
            commands::review::profiles(json);
            Ok(ExitCode::SUCCESS)
        }
        other => {
            let db = Database::open(&settings).await?;
            let result = with_database(&db, &settings, other).await;
            db.close().await;
            result
        }
    }
}

async fn with_database(db: &Database, settings: &Settings, command: Command) -> Result<ExitCode, CliError> {
    let store = Store::new(db.pool.clone());
    let migrate = || async {
        spine_store::migrate::run(&db.pool).await.map_err(|e| CliError::failed(format!("migrations failed: {e}")))
    };
    match command {
        Command::Migrate => {
            migrate().await?;
            output::text(&format!("migrations applied ({})", db.location));
        }
        Command::Fsck(args) => {
            migrate().await?;
            if !commands::fsck::run(&db.pool, settings, args).await? {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Governance(GovernanceCmd::Check { json }) => {
            if !commands::governance::check(db, json).await? {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Tenant(TenantCmd::Create { slug, name, integrations, json }) => {
            migrate().await?;
            let t = commands::admin::tenant_create(&store, &slug, name.as_deref(), integrations).await?;
            commands::admin::print_tenants(&[t], json);
        }
        Command::Tenant(TenantCmd::Update { tenant, name, integrations, suspend, activate, json }) => {
            migrate().await?;
            let status = if suspend {
                Some("suspended")
            } else if activate {
                Some("active")
            } else {
                None
            };
            let update = commands::admin::TenantUpdate { name: name.as_deref(), integrations, status };
            let t = commands::admin::tenant_update(&store, &tenant, update).await?;
            commands::admin::print_tenants(&[t], json);
        }
        Command::Tenant(TenantCmd::List { json }) => {
            migrate().await?;
            commands::admin::print_tenants(&commands::admin::tenant_list(&store).await?, json);
        }
        Command::Key(KeyCmd::Create { tenant, service, name, scopes, json }) => {
            migrate().await?;
            commands::admin::key_create(&store, tenant.as_deref(), service, &name, &scopes, json).await?;
        }
        Command::Key(KeyCmd::List { tenant, json }) => {
            migrate().await?;
            commands::admin::key_list(&store, tenant.as_deref(), json).await?;
        }
        Command::Key(KeyCmd::Revoke { key }) => {
            migrate().await?;
            commands::admin::key_revoke(&store, &key).await?;
        }
        Command::User(UserCmd::Create { tenant, email, name, role, platform_admin, json }) => {
            migrate().await?;
            let args = commands::admin::NewUserArgs {
                tenant: &tenant,
                email: &email,
                name: &name,
                role: &role,
                platform_admin,
            };
            commands::admin::user_create(&store, args, json).await?;
        }
        Command::Schedules(cmd) => {
            migrate().await?;
            commands::schedules::run(&store, cmd).await?;
        }
        Command::Worker(args) => {
            migrate().await?;
            commands::worker::run(&db.pool, settings, args).await?;
        }
        Command::Jobs(cmd) => {
            migrate().await?;
            commands::jobs::run(&store, cmd).await?;
        }
        Command::Ingest(args) => {
            migrate().await?;
            if !commands::ingest::run(&store, settings, args).await? {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Review(cmd) => {
            migrate().await?;
            commands::review::run(&store, cmd).await?;
        }
        Command::Promote { batch, tenant, json } => {
            migrate().await?;
            commands::review::promote(&store, tenant.as_deref(), batch, json).await?;
        }
        Command::Trace { id, tenant, json } => {
            migrate().await?;
            commands::review::trace(&store, tenant.as_deref(), id, json).await?;
        }
        Command::Connection(cmd) => {
            migrate().await?;
            commands::connections::run(&store, settings, cmd).await?;
        }
        Command::Keys(cmd) => {
            migrate().await?;
            commands::vault::run(&store, settings, cmd).await?;
        }
        Command::Bench(BenchCmd::Vault(args)) => {
            migrate().await?;
            commands::bench_vault::run(&db.pool, args).await?;
        }
        Command::Bench(BenchCmd::Staging(args)) => {
            migrate().await?;
            commands::bench_staging::run(&db.pool, args).await?;
        }
        Command::Bench(BenchCmd::Queue(args)) => {
            migrate().await?;
            commands::bench::queue(&db.pool, settings, args).await?;
        }
        Command::Up(_)
        | Command::Openapi
        | Command::Config(_)
        | Command::Profiles { .. }
        | Command::Bench(BenchCmd::Blobs(_)) => {
            unreachable!("handled without a database")
        }
    }
    Ok(ExitCode::SUCCESS)
}
