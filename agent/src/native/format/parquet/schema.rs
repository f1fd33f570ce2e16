//! Schema comparison between sources and widening: every source must have the first
//! source's schema up to nodes being `REQUIRED` in one file and `OPTIONAL` in another; the
//! output of such sources gets the widened schema, and a source column's definition levels
//! are mapped onto the widened path.

use std::sync::Arc;

use parquet::basic::Repetition;
use parquet::errors::ParquetError;
use parquet::schema::types::{ColumnPath, Type, TypePtr};

use super::merger::Reference;
use crate::native::format::FormatError;

pub(super) fn check_schema(
    reference: &Reference,
    file: &str,
    schema: &Type,
) -> Result<(), FormatError> {
    let mut path = Vec::new();
    match schema_difference(reference.schema.root_schema(), schema, &mut path) {
        None => Ok(()),
        Some(detail) => Err(FormatError::SchemaMismatch {
            file: file.to_owned(),
            detail: format!("{detail} (first source: {})", reference.file),
        }),
    }
}

/// One line describing a schema node, as parquet-rs prints it (without children).
fn describe(t: &Type) -> String {
    let mut out = Vec::new();
    let shallow = match t {
        Type::GroupType { basic_info, .. } => {
            let mut b = Type::group_type_builder(basic_info.name())
                .with_converted_type(basic_info.converted_type())
                .with_logical_type(basic_info.logical_type_ref().cloned())
                .with_id(basic_info.has_id().then(|| basic_info.id()));
            if basic_info.has_repetition() {
                b = b.with_repetition(basic_info.repetition());
            }
            b.build().ok()
        }
        Type::PrimitiveType { .. } => Some(t.clone()),
    };
    if let Some(shallow) = shallow {
        parquet::schema::printer::print_schema(&mut out, &shallow);
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let text = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .trim_end_matches(" {")
        .trim_end_matches(';')
        .to_owned();
    let id = t.get_basic_info();
    if id.has_id() {
        format!("{text} (field id {})", id.id())
    } else {
        text
    }
}

/// The first difference between two schemas that is more than a node being `REQUIRED` in one
/// and `OPTIONAL` in the other (see [`widen`]); `None` when they are compatible.
fn schema_difference(a: &Type, b: &Type, path: &mut Vec<String>) -> Option<String> {
    let (ia, ib) = (a.get_basic_info(), b.get_basic_info());
    let at = |path: &[String]| {
        if path.is_empty() {
            "the root".to_owned()
        } else {
            format!("`{}`", path.join("."))
        }
    };
    let repetition_ok = match (ia.has_repetition(), ib.has_repetition()) {
        (false, false) => true,
        (true, true) => {
            let (ra, rb) = (ia.repetition(), ib.repetition());
            ra == rb || (ra != Repetition::REPEATED && rb != Repetition::REPEATED)
        }
        _ => false,
    };
    let same_node = ia.name() == ib.name()
        && repetition_ok
        && ia.converted_type() == ib.converted_type()
        && ia.logical_type_ref() == ib.logical_type_ref()
        && (ia.has_id(), ia.has_id().then(|| ia.id()))
            == (ib.has_id(), ib.has_id().then(|| ib.id()));
    let differs = || {
        Some(format!(
            "at {}: `{}` vs `{}`",
            at(path),
            describe(a),
            describe(b)
        ))
    };
    match (a, b) {
        (
            Type::PrimitiveType {
                physical_type: pa,
                type_length: la,
                scale: sa,
                precision: qa,
                ..
            },
            Type::PrimitiveType {
                physical_type: pb,
                type_length: lb,
                scale: sb,
                precision: qb,
                ..
            },
        ) => {
            if same_node && (pa, la, sa, qa) == (pb, lb, sb, qb) {
                None
            } else {
                differs()
            }
        }
        (Type::GroupType { fields: fa, .. }, Type::GroupType { fields: fb, .. }) => {
            if !same_node {
                return differs();
            }
            if fa.len() != fb.len() {
                return Some(format!(
                    "at {}: {} fields vs {}",
                    at(path),
                    fa.len(),
                    fb.len()
                ));
            }
            for (x, y) in fa.iter().zip(fb) {
                path.push(x.name().to_owned());
                if let Some(d) = schema_difference(x, y, path) {
                    return Some(d);
                }
                path.pop();
            }
            None
        }
        _ => differs(),
    }
}

/// The schema holding the data of both `a` and `b` (compatible, see [`schema_difference`]):
/// `a`, with every node that is `REQUIRED` in `a` but `OPTIONAL` in `b` made `OPTIONAL`.
/// Spark writes each file's schema from its data's nullability (a column is `REQUIRED` in a
/// file whose values had no NULL, and `OPTIONAL` in the next), so the files of one table
/// differ in exactly this way; `OPTIONAL` loses nothing (definition levels are remapped).
pub(super) fn widen(a: &TypePtr, b: &Type) -> Result<TypePtr, ParquetError> {
    if a.as_ref() == b {
        return Ok(Arc::clone(a));
    }
    let info = a.get_basic_info();
    let other = b.get_basic_info();
    let repetition = (info.has_repetition() && other.has_repetition()).then(|| {
        if info.repetition() == Repetition::REQUIRED && other.repetition() == Repetition::OPTIONAL {
            Repetition::OPTIONAL
        } else {
            info.repetition()
        }
    });
    let id = info.has_id().then(|| info.id());
    let widened = match (a.as_ref(), b) {
        (
            Type::PrimitiveType {
                physical_type,
                type_length,
                scale,
                precision,
                ..
            },
            _,
        ) => Type::primitive_type_builder(info.name(), *physical_type)
            .with_repetition(repetition.unwrap_or(Repetition::REQUIRED))
            .with_converted_type(info.converted_type())
            .with_logical_type(info.logical_type_ref().cloned())
            .with_length(*type_length)
            .with_scale(*scale)
            .with_precision(*precision)
            .with_id(id)
            .build()?,
        (Type::GroupType { fields, .. }, Type::GroupType { fields: others, .. }) => {
            let fields = fields
                .iter()
                .zip(others)
                .map(|(x, y)| widen(x, y))
                .collect::<Result<Vec<_>, _>>()?;
            let mut builder = Type::group_type_builder(info.name())
                .with_converted_type(info.converted_type())
                .with_logical_type(info.logical_type_ref().cloned())
                .with_fields(fields)
                .with_id(id);
            if let Some(r) = repetition {
                builder = builder.with_repetition(r);
            }
            builder.build()?
        }
        _ => return Err(ParquetError::General("incompatible schemas".into())),
    };
    Ok(Arc::new(widened))
}

/// The repetition of every node on a column's path, root excluded.
pub(super) fn path_repetitions(root: &Type, path: &ColumnPath) -> Option<Vec<Repetition>> {
    let mut node = root;
    let mut out = Vec::new();
    for part in path.parts() {
        node = node.get_fields().iter().find(|f| f.name() == part)?;
        out.push(node.get_basic_info().repetition());
    }
    Some(out)
}

/// How a source column's definition levels map onto the output's, when the output made some
/// of the column's `REQUIRED` nodes `OPTIONAL`: `map[l]` is the output level of source level
/// `l`. A source level `l` says the nodes before the source's (l+1)-th optional-or-repeated
/// node are defined; the output level counts the output's optional-or-repeated nodes among
/// those. `None` when nothing changes.
pub(super) fn definition_level_map(
    source: &[Repetition],
    output: &[Repetition],
) -> Option<Vec<i16>> {
    if source == output {
        return None;
    }
    let counts = |r: &Repetition| *r != Repetition::REQUIRED;
    let max = source.iter().filter(|r| counts(r)).count();
    let map = (0..=max)
        .map(|level| {
            // The defined prefix: up to the (level+1)-th counting node of the source.
            let prefix = source
                .iter()
                .enumerate()
                .filter(|(_, r)| counts(r))
                .nth(level)
                .map_or(source.len(), |(i, _)| i);
            output[..prefix].iter().filter(|r| counts(r)).count() as i16
        })
        .collect();
    Some(map)
}
