//! Tests of the Parquet merge: fixtures (files written through arrow and through the
//! low-level API the way Spark and Hive write them), reading merged files back exactly, and
//! the tests proper by subject.

mod fixtures;
mod readback;

mod corrupt;
mod fuzz_seeds;
mod merge;
mod schema;
