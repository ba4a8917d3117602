//! `views`: the typed views the service made, each with its columns and their types, or with
//! `--sql` the statements that created them.

use std::fmt::Write as _;

use anyhow::Context as _;

use crate::app::open_store;
use crate::cli::Exit;
use crate::config::Settings;
use crate::mirror::Store;
use crate::mirror::views::RegisteredView;

#[derive(clap::Args)]
pub struct Args {
    /// Print the CREATE VIEW statements instead of the columns.
    #[arg(long)]
    sql: bool,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<Exit> {
    let store = open_store(&settings.database_url).await?;
    let views = store.views().await.context("reading the typed views");
    store.close().await;
    let views = views?;
    if views.is_empty() {
        eprintln!(
            "no typed views yet: discovery makes them, at every reconcile (`twenty-mirror reconcile`, or \
             the server's runs)"
        );
        return Ok(Exit::Success);
    }
    let out = if args.sql { statements(&store, &views) } else { listing(&store, &views) };
    print!("{out}");
    Ok(Exit::Success)
}

fn statements(store: &Store, views: &[RegisteredView]) -> String {
    views.iter().map(|view| format!("{};\n\n", store.create_view_statement(view))).collect()
}

fn listing(store: &Store, views: &[RegisteredView]) -> String {
    let mut out = String::new();
    for view in views {
        let name = store.view_reader_name(&view.name);
        let Some(plan) = &view.plan else {
            let _ =
                writeln!(out, "{name} (object {}): its plan cannot be read; `--sql` shows it\n", view.object);
            continue;
        };
        let _ = writeln!(out, "{name} (object {}, {} columns)", view.object, plan.columns.len());
        if let (Some(wanted), Some(conflict)) = (&plan.wanted_name, &plan.conflict) {
            let _ = writeln!(out, "  not {}: {}", store.view_reader_name(wanted), conflict.describe(wanted));
        }
        let width = plan.columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for column in &plan.columns {
            let field = match &column.sub_field {
                Some(sub) => format!("{}.{sub}", column.field),
                None => column.field.clone(),
            };
            let renamed =
                column.wanted_name.as_ref().map(|w| format!(", not {w}: taken")).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<width$}  {:<36}  {field} ({}){renamed}",
                column.name,
                store.view_column_type(column.kind),
                column.field_type,
            );
        }
        for skipped in &plan.skipped {
            let _ = writeln!(out, "  not a column: {} ({})", skipped.field, skipped.reason.describe());
        }
        out.push('\n');
    }
    out
}
