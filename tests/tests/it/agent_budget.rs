//! The executor takes from the merge budget only when a merge really starts: a job for a
//! table the live MetaStore does not have (a stale alert) ends `table_not_found` without
//! asking the budget, so it cannot spend the hourly merge budget of real merges.

use std::sync::Mutex;

use hive_smallfiles_agent::config::AgentConfig;
use hive_smallfiles_agent::service::build_runner;
use hive_smallfiles_agent::work::{BudgetRefusal, JobOutcome, JobRunner, MergeBudget};
use hive_smallfiles_tests::metastore_fixture::{DbKind, FixtureDb, SchemaVersion, unique_db_name};
use hive_smallfiles_tests::spark::manual_job;
use tokio_util::sync::CancellationToken;

/// Records every start the runner asks for.
#[derive(Debug, Default)]
struct Ledger(Mutex<Vec<(String, u64)>>);

impl MergeBudget for Ledger {
    fn try_start(&self, cluster: &str, bytes: u64) -> Result<(), BudgetRefusal> {
        self.0.lock().unwrap().push((cluster.to_owned(), bytes));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_alert_ends_table_not_found_without_asking_the_budget() {
    let db_name = unique_db_name("budget");
    let db = FixtureDb::create(DbKind::Mysql, SchemaVersion::Hive3_1, &db_name)
        .await
        .expect("MariaDB at 127.0.0.1:3306 (tests/run.sh starts it)");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "audit_log = \"audit.jsonl\"\n[[cluster]]\nname = \"spark\"\nengine = \"hive\"\n\
         [cluster.metastore]\nurl = \"mysql://root@127.0.0.1:3306/{db_name}\"\n\
         [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
        dir.path().display()
    );
    let config = AgentConfig::from_toml(&text, dir.path(), &std::collections::BTreeMap::new())
        .expect("config");
    let runner = build_runner(&config).expect("runner");
    // A job for a table dropped since the alert fired.
    let job = manual_job(1, "sales", "dropped_last_week");
    let ledger = Ledger::default();
    let outcome = runner.run(&job, &ledger, &CancellationToken::new()).await;
    assert!(
        matches!(&outcome, JobOutcome::Skipped { reason, .. } if reason == "table_not_found"),
        "{outcome:?}"
    );
    assert!(ledger.0.lock().unwrap().is_empty(), "nothing taken");
    db.drop_database().await.expect("drop");
}
