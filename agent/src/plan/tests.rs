use super::*;
use hive_smallfiles_core::metastore::PartitionKey;
use hive_smallfiles_core::walk::counts::CodecHint;
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
        compression: ListedCompression::Plain,
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
    let policy = Policy {
        allow_external: true,
        ..acknowledged()
    };
    plan_of(t, engine, hive3, ExecutorChoice::Engine, parts, &policy)
}

/// Plans `parts` of `t` with the test columns, a 128 MiB target and a fixed clock.
fn plan_of(
    t: &TableMeta,
    engine: Engine,
    hive3: bool,
    executor: ExecutorChoice,
    parts: Vec<PartitionState>,
    policy: &Policy,
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
        executor,
        has_engine: true,
        now: UNIX_EPOCH + Duration::from_secs(1_000_000),
    };
    plan(&input, policy)
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
            compression: ListedCompression::Plain,
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

/// A partition whose files have these names (their codec suffixes are what the listing shows),
/// counted by the scanner's own code.
fn listed(value: &str, names: &[&str], bytes: u64) -> PartitionState {
    use hive_smallfiles_core::fs::{EntryKind, FileStatus};
    use hive_smallfiles_core::walk::counts::FileCounts;
    let mut counts = FileCounts::default();
    for name in names {
        counts.add_status(
            &FileStatus {
                name: (*name).into(),
                kind: EntryKind::File,
                length: bytes / names.len() as u64,
                modification_time_ms: 0,
                access_time_ms: 0,
                permission: 0o644,
                owner: "hive".into(),
                group: "hive".into(),
            },
            u64::MAX,
        );
    }
    PartitionState {
        files: counts.files,
        bytes: counts.bytes,
        compression: ListedCompression::of(&counts),
        ..part(value, 0, 0)
    }
}

fn names(n: usize, suffix: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("part-{i:05}-c000{suffix}"))
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn plan_with(
    t: &TableMeta,
    engine: Engine,
    executor: ExecutorChoice,
    parts: Vec<PartitionState>,
) -> Result<MergePlan, Skip> {
    plan_of(t, engine, false, executor, parts, &acknowledged())
}

fn planned<'a>(p: &'a MergePlan, name: &str) -> &'a PlannedPartition {
    p.partitions
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("{name} not planned: {p:?}"))
}

fn skipped<'a>(p: &'a MergePlan, name: &str) -> &'a SkippedPartition {
    p.skipped
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("{name} not skipped: {p:?}"))
}

#[test]
fn listing_shows_plain_uniform_or_mixed_compression() {
    let of = |names: &[&str]| listed("x", names, 100).compression;
    assert_eq!(of(&["000000_0", "000001_0"]), ListedCompression::Plain);
    assert_eq!(
        of(&["000000_0.gz", "000001_0.gz", "_SUCCESS", ".000000_0.gz.crc"]),
        ListedCompression::Uniform(CodecHint::Gzip)
    );
    assert_eq!(
        of(&["a.bz2", "b.bz2"]),
        ListedCompression::Uniform(CodecHint::Bzip2)
    );
    assert_eq!(of(&["000000_0", "000001_0.gz"]), ListedCompression::Mixed);
    assert_eq!(of(&["a.gz", "b.bz2", "c.gz"]), ListedCompression::Mixed);
    assert_eq!(of(&[]), ListedCompression::Plain);
}

/// Every codec's extension is recognised by the scanner as that codec, so what a rewrite
/// writes shows up as the same compression on the next listing.
#[test]
fn codec_extensions_round_trip_through_the_listing() {
    for hint in [
        CodecHint::Gzip,
        CodecHint::Bzip2,
        CodecHint::Deflate,
        CodecHint::Snappy,
        CodecHint::Lz4,
        CodecHint::Zstd,
        CodecHint::Lzo,
    ] {
        let Some(codec) = TextCodec::from_hint(hint) else {
            assert_eq!(hint, CodecHint::Lzo, "only LZO is not part of Hadoop");
            continue;
        };
        let file = format!("part-00000-c000{}", codec.extension());
        assert_eq!(CodecHint::from_file_name(&file), Some(hint), "{file}");
        let class = codec.hadoop_class();
        assert!(
            class.starts_with("org.apache.hadoop.io.compress.") && class.ends_with("Codec"),
            "{class}"
        );
    }
}

/// An engine-staged job over a gzip partition and a plain one: each is written as it was,
/// and each sets the engine's output compression anew (on, with gzip; off).
#[test]
fn staged_partitions_keep_their_own_text_compression() {
    let t = table(TEXT, "MANAGED_TABLE", &[], &["dt"]);
    let gz = names(12, ".gz");
    let plain = names(9, "");
    for engine in [Engine::Spark, Engine::Hive] {
        for executor in [ExecutorChoice::EngineStaged, ExecutorChoice::Engine] {
            let p = plan_with(
                &t,
                engine,
                executor,
                vec![
                    listed("gz", &refs(&gz), MIB),
                    listed("plain", &refs(&plain), MIB),
                ],
            )
            .unwrap();
            let case = format!("{engine:?} {executor:?}");
            let gz_part = planned(&p, "dt=gz");
            assert_eq!(
                gz_part.compression,
                WriteCompression::Text {
                    codec: Some(TextCodec::Gzip),
                    hadoop_codec: Some("org.apache.hadoop.io.compress.GzipCodec"),
                },
                "{case}"
            );
            assert_eq!(
                p.partition_setup(gz_part),
                [
                    "SET hive.exec.compress.output=true",
                    "SET mapreduce.output.fileoutputformat.compress.codec=org.apache.hadoop.io.compress.GzipCodec",
                ],
                "{case}"
            );
            let plain_part = planned(&p, "dt=plain");
            assert_eq!(
                plain_part.compression,
                WriteCompression::Text {
                    codec: None,
                    hadoop_codec: None
                },
                "{case}"
            );
            assert_eq!(
                p.partition_setup(plain_part),
                ["SET hive.exec.compress.output=false"],
                "{case}"
            );
            // The per-partition settings are not in the job's setup, where they would apply
            // to every partition.
            assert!(
                p.setup.iter().all(|s| !s.contains("compress")),
                "{case}: {:?}",
                p.setup
            );
        }
    }
}

/// Codecs other than gzip: in place they map to Hadoop's classes; staged output could not be
/// verified, LZO is not Hadoop's, Impala writes plain text only, and a mix has no single
/// compression to keep. Those partitions are left alone with the reason, never decompressed.
#[test]
fn a_compression_that_cannot_be_kept_skips_the_partition() {
    let t = table(TEXT, "MANAGED_TABLE", &[], &["dt"]);
    let files = |suffix: &str| names(10, suffix);
    let in_place = |engine, suffix: &str| {
        plan_with(
            &t,
            engine,
            ExecutorChoice::Engine,
            vec![listed("1", &refs(&files(suffix)), MIB)],
        )
    };
    for (suffix, class) in [
        (".bz2", "org.apache.hadoop.io.compress.BZip2Codec"),
        (".deflate", "org.apache.hadoop.io.compress.DefaultCodec"),
        (".snappy", "org.apache.hadoop.io.compress.SnappyCodec"),
        (".lz4", "org.apache.hadoop.io.compress.Lz4Codec"),
        (".zst", "org.apache.hadoop.io.compress.ZStandardCodec"),
    ] {
        for engine in [Engine::Spark, Engine::Hive] {
            let p = in_place(engine, suffix).unwrap();
            assert_eq!(
                p.partition_setup(&p.partitions[0]),
                [
                    "SET hive.exec.compress.output=true".to_owned(),
                    format!("SET mapreduce.output.fileoutputformat.compress.codec={class}"),
                ],
                "{suffix} {engine:?}"
            );
        }
        let staged = plan_with(
            &t,
            Engine::Spark,
            ExecutorChoice::EngineStaged,
            vec![
                listed("1", &refs(&files(suffix)), MIB),
                listed("2", &refs(&files(".gz")), MIB),
            ],
        )
        .unwrap();
        assert_eq!(
            skipped(&staged, "dt=1").reason,
            "compression_not_verifiable",
            "{suffix}"
        );
        assert_eq!(
            staged.partitions.len(),
            1,
            "{suffix}: the gzip one is merged"
        );
    }
    let lzo = in_place(Engine::Hive, ".lzo").unwrap_err();
    assert_eq!(lzo.reason, "nothing_to_merge");
    assert!(
        lzo.detail.contains("compression_not_writable: lzo text"),
        "{}",
        lzo.detail
    );
    let impala = in_place(Engine::Impala, ".gz").unwrap_err();
    assert!(
        impala
            .detail
            .contains("compression_not_writable: gzip text: Impala writes text uncompressed"),
        "{}",
        impala.detail
    );
    // Impala's plain text needs no setting (it has none for text).
    let impala_plain = in_place(Engine::Impala, "").unwrap();
    assert_eq!(
        impala_plain.partition_setup(&impala_plain.partitions[0]),
        Vec::<String>::new()
    );
    let mut mixed = files(".gz");
    mixed.push("000000_0".to_owned());
    for executor in [ExecutorChoice::Engine, ExecutorChoice::EngineStaged] {
        let p = plan_with(
            &t,
            Engine::Spark,
            executor,
            vec![
                listed("mixed", &refs(&mixed), MIB),
                listed("ok", &refs(&files("")), MIB),
            ],
        )
        .unwrap();
        let s = skipped(&p, "dt=mixed");
        assert_eq!(s.reason, "mixed_compression", "{executor:?}");
        // The plan says why, in the API and the audit log.
        let shown = serde_json::to_value(&p).unwrap();
        let entry = shown["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "dt=mixed")
            .unwrap()
            .clone();
        assert!(
            entry["detail"]
                .as_str()
                .unwrap()
                .contains("not all compressed alike"),
            "{entry}"
        );
    }
}

/// The plan shows per partition what it will write; formats whose codec lives inside the
/// files, and native merges, get no session settings.
#[test]
fn the_plan_shows_the_compression_it_writes() {
    let text = table(TEXT, "MANAGED_TABLE", &[], &["dt"]);
    let gz = names(10, ".gz");
    let p = plan_with(
        &text,
        Engine::Spark,
        ExecutorChoice::EngineStaged,
        vec![listed("1", &refs(&gz), MIB)],
    )
    .unwrap();
    let shown = serde_json::to_value(&p).unwrap();
    assert_eq!(
        shown["partitions"][0]["compression"],
        serde_json::json!({
            "kind": "text",
            "codec": "gzip",
            "hadoop_codec": "org.apache.hadoop.io.compress.GzipCodec"
        })
    );
    let native = plan_with(
        &text,
        Engine::Spark,
        ExecutorChoice::Native,
        vec![listed("1", &refs(&gz), MIB)],
    )
    .unwrap();
    assert_eq!(native.strategy, Strategy::Native);
    assert_eq!(
        native.partitions[0].compression,
        WriteCompression::Text {
            codec: Some(TextCodec::Gzip),
            hadoop_codec: Some(TextCodec::Gzip.hadoop_class())
        }
    );
    assert!(native.partition_setup(&native.partitions[0]).is_empty());
    let pq = table(
        PARQUET,
        "MANAGED_TABLE",
        &[("parquet.compression", "GZIP")],
        &["dt"],
    );
    let snappy_parquet = names(10, ".snappy.parquet");
    let p = plan_with(
        &pq,
        Engine::Spark,
        ExecutorChoice::EngineStaged,
        vec![listed("1", &refs(&snappy_parquet), MIB)],
    )
    .unwrap();
    assert_eq!(
        p.partitions[0].compression,
        WriteCompression::Columnar {
            declared: Some("gzip".to_owned())
        }
    );
    assert!(p.partition_setup(&p.partitions[0]).is_empty());
    let orc = table(ORC, "MANAGED_TABLE", &[], &["dt"]);
    let c = plan_with(
        &orc,
        Engine::Hive,
        ExecutorChoice::Engine,
        vec![part("1", 10, MIB)],
    )
    .unwrap();
    assert_eq!(c.strategy, Strategy::Concatenate);
    assert_eq!(c.partitions[0].compression, WriteCompression::AsSources);
    assert!(c.partition_setup(&c.partitions[0]).is_empty());
}
