use super::*;
use hive_smallfiles_core::metastore::PartitionKey;
use std::time::{Duration, UNIX_EPOCH};

const MIB: u64 = 1 << 20;

fn table(format_input: &str, tbl_type: &str, params: &[(&str, &str)], keys: &[&str]) -> TableMeta {
    let mut t = crate::policy::tests::table(tbl_type, params);
    t.name = "odd`name".into();
    t.input_format = Some(format_input.into());
    t.partition_keys = keys
        .iter()
        .map(|k| PartitionKey {
            name: (*k).into(),
            type_name: "string".into(),
        })
        .collect();
    t
}

const TEXT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const ORC: &str = "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat";
const PARQUET: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const AVRO: &str = "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat";

fn part(value: &str, files: u64, bytes: u64) -> PartitionState {
    PartitionState {
        name: format!("dt={value}"),
        values: vec![value.into()],
        files,
        bytes,
        newest_file_ms: 0,
        path: None,
    }
}

fn columns() -> Vec<Column> {
    vec![
        Column {
            name: "id".into(),
            type_name: "int".into(),
            comment: None,
        },
        Column {
            name: "we'ird".into(),
            type_name: "string".into(),
            comment: None,
        },
    ]
}

fn run(
    t: &TableMeta,
    engine: Engine,
    hive3: bool,
    parts: Vec<PartitionState>,
) -> Result<MergePlan, Skip> {
    let cols = columns();
    let requested = BTreeSet::new();
    let input = PlanInput {
        table: t,
        columns: &cols,
        partitions: parts,
        engine,
        hive3,
        target_file_bytes: 128 * MIB,
        requested: &requested,
        executor: ExecutorChoice::Engine,
        has_engine: true,
        now: UNIX_EPOCH + Duration::from_secs(1_000_000),
    };
    plan(
        &input,
        &Policy {
            allow_external: true,
            ..acknowledged()
        },
    )
}

/// The default policy, with in-place rewrites of every table acknowledged.
fn acknowledged() -> Policy {
    Policy {
        allow_in_place: hive_smallfiles_core::config::TableFilter::new(&["*".to_owned()], &[])
            .unwrap(),
        ..Policy::default()
    }
}

/// (input format, table type, parameters, engine, Hive 3, expected strategy or skip reason).
type Case<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Engine,
    bool,
    Result<Strategy, &'a str>,
);

#[test]
fn strategy_table() {
    let parts = || vec![part("1", 10, 10 * MIB)];
    let acid = [("transactional", "true")];
    let mm = [
        ("transactional", "true"),
        ("transactional_properties", "insert_only"),
    ];
    let cases: Vec<Case<'_>> = vec![
        (
            ORC,
            "MANAGED_TABLE",
            &[],
            Engine::Hive,
            false,
            Ok(Strategy::Concatenate),
        ),
        (
            ORC,
            "MANAGED_TABLE",
            &[],
            Engine::Hive,
            true,
            Ok(Strategy::InsertOverwrite),
        ),
        (
            ORC,
            "EXTERNAL_TABLE",
            &[],
            Engine::Hive,
            false,
            Ok(Strategy::InsertOverwrite),
        ),
        (
            ORC,
            "MANAGED_TABLE",
            &[],
            Engine::Spark,
            false,
            Ok(Strategy::InsertOverwrite),
        ),
        (
            ORC,
            "MANAGED_TABLE",
            &acid,
            Engine::Hive,
            true,
            Ok(Strategy::CompactMajor),
        ),
        (
            TEXT,
            "MANAGED_TABLE",
            &mm,
            Engine::Hive,
            true,
            Ok(Strategy::CompactMajor),
        ),
        (
            ORC,
            "MANAGED_TABLE",
            &acid,
            Engine::Spark,
            true,
            Err("transactional_needs_hive"),
        ),
        (
            TEXT,
            "MANAGED_TABLE",
            &[],
            Engine::Spark,
            false,
            Ok(Strategy::InsertOverwrite),
        ),
        (
            TEXT,
            "MANAGED_TABLE",
            &[("skip.header.line.count", "1")],
            Engine::Hive,
            false,
            Err("header_lines"),
        ),
        (
            PARQUET,
            "MANAGED_TABLE",
            &[],
            Engine::Impala,
            false,
            Ok(Strategy::InsertOverwrite),
        ),
        (
            AVRO,
            "MANAGED_TABLE",
            &[],
            Engine::Impala,
            false,
            Err("format_not_writable"),
        ),
        (
            "com.example.CustomInputFormat",
            "MANAGED_TABLE",
            &[],
            Engine::Hive,
            false,
            Err("format_not_writable"),
        ),
    ];
    for (fmt, ty, params, engine, hive3, want) in cases {
        let t = table(fmt, ty, params, &["dt"]);
        let got = run(&t, engine, hive3, parts())
            .map(|p| p.strategy)
            .map_err(|s| s.reason);
        assert_eq!(got, want, "{fmt} {ty} {params:?} {engine:?} hive3={hive3}");
    }
    let mut bucketed = table(ORC, "MANAGED_TABLE", &[], &["dt"]);
    bucketed.num_buckets = 4;
    assert_eq!(
        run(&bucketed, Engine::Hive, false, parts())
            .unwrap()
            .strategy,
        Strategy::InsertOverwrite
    );
    assert_eq!(
        run(&bucketed, Engine::Spark, false, parts())
            .unwrap_err()
            .reason,
        "bucketed"
    );
}

#[test]
fn picks_partitions_worth_merging_and_counts_files() {
    let t = table(TEXT, "MANAGED_TABLE", &[], &["dt"]);
    let mut recent = part("recent", 50, MIB);
    recent.newest_file_ms = 999_999_000;
    let parts = vec![
        part("a", 2, 300 * MIB),  // 2 files, ideal 3: nothing to gain
        part("b", 40, 200 * MIB), // ideal 2: 38 excess
        part("c", 10, 10 * MIB),  // ideal 1: 9 excess
        part("__HIVE_DEFAULT_PARTITION__", 99, MIB),
        recent,
    ];
    let p = run(&t, Engine::Spark, false, parts).unwrap();
    assert_eq!(
        p.partitions
            .iter()
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>(),
        ["dt=b", "dt=c"]
    );
    assert_eq!(p.partitions[0].expected_files, Some(2));
    assert_eq!(p.total_bytes, 210 * MIB);
    let reasons: Vec<_> = p
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason))
        .collect();
    assert!(reasons.contains(&("dt=a", "not_worth_merging")));
    assert!(reasons.contains(&("dt=__HIVE_DEFAULT_PARTITION__", "default_partition")));
    assert!(reasons.contains(&("dt=recent", "quiet_period")));
}

#[test]
fn statements_are_escaped_per_engine() {
    let t = table(TEXT, "MANAGED_TABLE", &[], &["dt"]);
    let p = run(
        &t,
        Engine::Spark,
        false,
        vec![part("x' OR '1'='1", 10, MIB)],
    )
    .unwrap();
    let pp = &p.partitions[0];
    assert_eq!(
        p.merge_statement(pp),
        "INSERT OVERWRITE TABLE `db`.`odd``name` PARTITION (`dt`='x\\' OR \\'1\\'=\\'1') SELECT /*+ COALESCE(1) */ `id`, `we'ird` FROM `db`.`odd``name` WHERE `dt` = 'x\\' OR \\'1\\'=\\'1'"
    );
    assert_eq!(
        p.count_statement(pp),
        "SELECT count(*) FROM `db`.`odd``name` WHERE `dt` = 'x\\' OR \\'1\\'=\\'1'"
    );
    assert!(
        p.setup
            .iter()
            .any(|s| s == "SET spark.sql.hive.convertInsertingPartitionedTable=false")
    );
    let impala = run(
        &table(PARQUET, "MANAGED_TABLE", &[], &["dt"]),
        Engine::Impala,
        false,
        vec![part("1", 10, MIB)],
    )
    .unwrap();
    assert_eq!(
        impala.post_statements(&impala.partitions[0], &[]),
        vec!["REFRESH `db`.`odd``name` PARTITION (`dt`='1')"]
    );
    let unpart = run(
        &table(TEXT, "MANAGED_TABLE", &[], &[]),
        Engine::Hive,
        false,
        vec![PartitionState {
            name: String::new(),
            values: vec![],
            files: 9,
            bytes: MIB,
            newest_file_ms: 0,
            path: None,
        }],
    )
    .unwrap();
    assert_eq!(
        unpart.merge_statement(&unpart.partitions[0]),
        "INSERT OVERWRITE TABLE `db`.`odd``name` SELECT `id`, `we'ird` FROM `db`.`odd``name`"
    );
    assert_eq!(
        unpart.count_statement(&unpart.partitions[0]),
        "SELECT count(*) FROM `db`.`odd``name` WHERE TRUE"
    );
    let acid = run(
        &table(ORC, "MANAGED_TABLE", &[("transactional", "true")], &["dt"]),
        Engine::Hive,
        true,
        vec![part("1", 10, MIB)],
    )
    .unwrap();
    assert_eq!(
        acid.merge_statement(&acid.partitions[0]),
        "ALTER TABLE `db`.`odd``name` PARTITION (`dt`='1') COMPACT 'major' AND WAIT"
    );
    assert_eq!(acid.partitions[0].expected_files, None);
}

#[test]
fn job_size_limit_and_nothing_to_merge() {
    let t = table(TEXT, "MANAGED_TABLE", &[], &["dt"]);
    let cols = columns();
    let requested = BTreeSet::new();
    let input = PlanInput {
        table: &t,
        columns: &cols,
        partitions: vec![part("1", 10, 60 * MIB), part("2", 10, 60 * MIB)],
        engine: Engine::Hive,
        hive3: false,
        target_file_bytes: 128 * MIB,
        requested: &requested,
        executor: ExecutorChoice::Engine,
        has_engine: true,
        now: UNIX_EPOCH + Duration::from_secs(1_000_000),
    };
    let p = plan(
        &input,
        &Policy {
            max_bytes_per_job: 100 * MIB,
            ..acknowledged()
        },
    )
    .unwrap();
    assert_eq!(p.partitions.len(), 1);
    assert_eq!(p.skipped[0].reason, "job_size_limit");
    let input = PlanInput {
        partitions: vec![part("1", 1, MIB)],
        ..input
    };
    let acknowledged = acknowledged();
    assert_eq!(
        plan(&input, &acknowledged).unwrap_err().reason,
        "nothing_to_merge"
    );
}

#[test]
fn executor_choice_table() {
    let parts = || vec![part("1", 10, 10 * MIB)];
    let acid = [("transactional", "true")];
    let header = [("skip.header.line.count", "1")];
    let cols = columns();
    let requested = BTreeSet::new();
    let choose_for = |t: &TableMeta, engine: Engine, executor: ExecutorChoice, has_engine| {
        let input = PlanInput {
            table: t,
            columns: &cols,
            partitions: parts(),
            engine,
            hive3: false,
            target_file_bytes: 128 * MIB,
            requested: &requested,
            executor,
            has_engine,
            now: UNIX_EPOCH + Duration::from_secs(1_000_000),
        };
        plan(
            &input,
            &Policy {
                allow_external: true,
                ..acknowledged()
            },
        )
        .map(|p| p.strategy)
        .map_err(|s| s.reason)
    };
    use ExecutorChoice::{Auto, Engine as E, EngineStaged, Native};
    let text = table(TEXT, "MANAGED_TABLE", &[], &["dt"]);
    let parquet = table(PARQUET, "EXTERNAL_TABLE", &[], &["dt"]);
    let orc = table(ORC, "MANAGED_TABLE", &[], &["dt"]);
    let avro = table(AVRO, "MANAGED_TABLE", &[], &["dt"]);
    let acid_orc = table(ORC, "MANAGED_TABLE", &acid, &["dt"]);
    let mut csv = table(TEXT, "MANAGED_TABLE", &[], &["dt"]);
    csv.serde_params = header
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let mut bucketed = table(PARQUET, "MANAGED_TABLE", &[], &["dt"]);
    bucketed.num_buckets = 8;
    let cases = [
        (&text, Engine::Spark, Auto, true, Ok(Strategy::Native)),
        (&text, Engine::Spark, Auto, false, Ok(Strategy::Native)),
        (&parquet, Engine::Impala, Auto, true, Ok(Strategy::Native)),
        (&orc, Engine::Spark, Auto, true, Ok(Strategy::EngineStaged)),
        (&orc, Engine::Hive, Auto, true, Ok(Strategy::Concatenate)),
        (&orc, Engine::Spark, Auto, false, Err("format_not_native")),
        (&orc, Engine::Spark, Native, true, Err("format_not_native")),
        (
            &avro,
            Engine::Spark,
            Auto,
            true,
            Ok(Strategy::InsertOverwrite),
        ),
        (
            &avro,
            Engine::Spark,
            EngineStaged,
            true,
            Err("staging_not_possible"),
        ),
        (
            &acid_orc,
            Engine::Hive,
            Auto,
            true,
            Ok(Strategy::CompactMajor),
        ),
        (&acid_orc, Engine::Hive, Native, true, Err("transactional")),
        (&csv, Engine::Spark, Auto, true, Err("header_lines")),
        (&csv, Engine::Spark, Native, true, Err("header_lines")),
        (&bucketed, Engine::Spark, Auto, true, Err("bucketed")),
        (&bucketed, Engine::Hive, Native, true, Err("bucketed")),
        (&text, Engine::Spark, E, true, Ok(Strategy::InsertOverwrite)),
        (&text, Engine::Spark, E, false, Err("no_engine")),
        (
            &text,
            Engine::Spark,
            EngineStaged,
            true,
            Ok(Strategy::EngineStaged),
        ),
        (
            &text,
            Engine::Impala,
            EngineStaged,
            true,
            Err("staging_not_possible"),
        ),
        (
            &parquet,
            Engine::Hive,
            EngineStaged,
            true,
            Ok(Strategy::EngineStaged),
        ),
    ];
    for (i, (t, engine, executor, has_engine, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            choose_for(t, engine, executor, has_engine),
            want,
            "case {i}: {} {engine:?} {executor:?} engine={has_engine}",
            t.input_format.as_deref().unwrap_or_default()
        );
    }
}

#[test]
fn staged_statement_keeps_the_row_format() {
    let mut t = table(TEXT, "MANAGED_TABLE", &[], &["dt"]);
    t.serde_lib = Some("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".into());
    t.serde_params = [("field.delim", ","), ("serialization.null.format", "\\N")]
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    t.output_format = Some("org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat".into());
    let p = run(&t, Engine::Spark, false, vec![part("1", 10, MIB)]).unwrap();
    let sql = p.staged_statement(&p.partitions[0], "file:/w/.hive-smallfiles.dt=1/m1/output");
    assert_eq!(
        sql,
        "INSERT OVERWRITE DIRECTORY 'file:/w/.hive-smallfiles.dt=1/m1/output' ROW FORMAT SERDE \
         'org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe' WITH SERDEPROPERTIES \
         ('field.delim'=',', 'serialization.null.format'='\\\\N') STORED AS INPUTFORMAT \
         'org.apache.hadoop.mapred.TextInputFormat' OUTPUTFORMAT \
         'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat' SELECT /*+ COALESCE(1) */ \
         `id`, `we'ird` FROM `db`.`odd``name` WHERE `dt` = '1'"
    );
    let pq = run(
        &table(PARQUET, "MANAGED_TABLE", &[], &["dt"]),
        Engine::Hive,
        false,
        vec![part("1", 10, MIB)],
    )
    .unwrap();
    assert!(
        pq.staged_statement(&pq.partitions[0], "hdfs://ns/x")
            .starts_with("INSERT OVERWRITE DIRECTORY 'hdfs://ns/x' STORED AS PARQUET SELECT `id`")
    );
}

#[test]
fn staged_statement_keeps_the_declared_codec() {
    let mut t = table(ORC, "MANAGED_TABLE", &[("orc.compress", "ZLIB")], &["dt"]);
    t.serde_lib = Some("org.apache.hadoop.hive.ql.io.orc.OrcSerde".into());
    t.output_format = Some("org.apache.hadoop.hive.ql.io.orc.OrcOutputFormat".into());
    let p = run(&t, Engine::Spark, false, vec![part("1", 10, MIB)]).unwrap();
    let sql = p.staged_statement(&p.partitions[0], "hdfs://ns/x");
    assert!(
        sql.starts_with(
            "INSERT OVERWRITE DIRECTORY 'hdfs://ns/x' ROW FORMAT SERDE \
             'org.apache.hadoop.hive.ql.io.orc.OrcSerde' WITH SERDEPROPERTIES \
             ('orc.compress'='ZLIB') STORED AS INPUTFORMAT \
             'org.apache.hadoop.hive.ql.io.orc.OrcInputFormat' OUTPUTFORMAT \
             'org.apache.hadoop.hive.ql.io.orc.OrcOutputFormat' SELECT"
        ),
        "{sql}"
    );
    let pq = run(
        &table(
            PARQUET,
            "MANAGED_TABLE",
            &[("parquet.compression", "GZIP"), ("numFiles", "10")],
            &["dt"],
        ),
        Engine::Hive,
        false,
        vec![part("1", 10, MIB)],
    )
    .unwrap();
    let sql = pq.staged_statement(&pq.partitions[0], "hdfs://ns/x");
    assert!(
        sql.contains(
            "'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' WITH \
             SERDEPROPERTIES ('parquet.compression'='GZIP') STORED AS INPUTFORMAT \
             'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat'"
        ),
        "{sql}"
    );
}

/// In-place engine rewrites can lose a concurrent writer's file: they run only for tables the
/// operator listed in `allow_in_place`, and their plans say why.
#[test]
fn in_place_rewrites_need_an_acknowledgment_and_say_their_risk() {
    let cols = columns();
    let requested = BTreeSet::new();
    let text = table(TEXT, "MANAGED_TABLE", &[], &["dt"]);
    let input = |executor| PlanInput {
        table: &text,
        columns: &cols,
        partitions: vec![part("1", 10, 10 * MIB)],
        engine: Engine::Spark,
        hive3: false,
        target_file_bytes: 128 * MIB,
        requested: &requested,
        executor,
        has_engine: true,
        now: UNIX_EPOCH + Duration::from_secs(1_000_000),
    };
    let refused = plan(&input(ExecutorChoice::Engine), &Policy::default()).unwrap_err();
    assert_eq!(refused.reason, "in_place_not_acknowledged");
    assert!(
        refused.detail.contains("allow_in_place"),
        "{}",
        refused.detail
    );
    let other_table = Policy {
        allow_in_place: hive_smallfiles_core::config::TableFilter::new(
            &["other.*".to_owned()],
            &[],
        )
        .unwrap(),
        ..Policy::default()
    };
    assert_eq!(
        plan(&input(ExecutorChoice::Engine), &other_table)
            .unwrap_err()
            .reason,
        "in_place_not_acknowledged"
    );
    let acknowledged = acknowledged();
    let p = plan(&input(ExecutorChoice::Engine), &acknowledged).unwrap();
    assert_eq!(p.strategy, Strategy::InsertOverwrite);
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].contains("lost"), "{:?}", p.warnings);
    let shown = serde_json::to_value(&p).unwrap();
    assert!(shown["warnings"][0].as_str().unwrap().contains("in-place"));
    // The staged executors carry no such risk and need no acknowledgment.
    let native = plan(&input(ExecutorChoice::Native), &Policy::default()).unwrap();
    assert_eq!(native.strategy, Strategy::Native);
    assert!(native.warnings.is_empty());
    assert!(
        serde_json::to_value(&native)
            .unwrap()
            .get("warnings")
            .is_none()
    );
}
