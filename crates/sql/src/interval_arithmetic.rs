//! `interval * number`, `number * interval` and `interval / number`, with
//! PostgreSQL's results.
//!
//! DataFusion has no such operators. An expression planner
//! ([`IntervalArithmetic`]) sees each `*` and `/` with the types of both
//! sides; when one side is an interval and the other a number, it plans
//! `shoal_interval_scale(interval, factor, divide)` instead, the number
//! cast to `double precision` as PostgreSQL's `interval_mul(interval,
//! float8)` takes it.
//!
//! An interval keeps months, days and time apart, so scaling one scales
//! each part, and a fraction left in a part moves down to the next: a
//! month counts 30 days, a day 24 hours (never up: `1 day * 1.5` is
//! `1 day 12:00:00`, not 36 hours). The arithmetic follows PostgreSQL's
//! `interval_mul` and `interval_div` step by step, down to rounding the
//! fractions to microseconds, so results print the same. Parts that
//! leave their range are 22008; dividing by zero is 22012.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Float64Array, IntervalMonthDayNanoArray};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::error::SqlError;

pub const NAME: &str = "shoal_interval_scale";

const INTERVAL: DataType = crate::interval::ARROW_TYPE;
const DAYS_PER_MONTH: f64 = 30.0;
const SECS_PER_DAY: f64 = 86_400.0;

/// Plans `*` and `/` between an interval and a number (module docs).
#[derive(Debug)]
pub struct IntervalArithmetic {
    scale: Arc<ScalarUDF>,
}

impl Default for IntervalArithmetic {
    fn default() -> Self {
        IntervalArithmetic {
            scale: Arc::new(ScalarUDF::new_from_impl(IntervalScale::default())),
        }
    }
}

impl ExprPlanner for IntervalArithmetic {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        if !matches!(expr.op, BinaryOperator::Multiply | BinaryOperator::Divide) {
            return Ok(PlannerResult::Original(expr));
        }
        let kind = |e: &Expr| match e.get_type(schema) {
            Ok(DataType::Interval(_)) => Some(true),
            Ok(t) if t.is_numeric() => Some(false),
            _ => None,
        };
        let divide = expr.op == BinaryOperator::Divide;
        let (interval, factor) = match (kind(&expr.left), kind(&expr.right)) {
            (Some(true), Some(false)) => (expr.left, expr.right),
            (Some(false), Some(true)) if !divide => (expr.right, expr.left),
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let args = vec![
            Expr::Cast(Cast::new(Box::new(interval), INTERVAL)),
            Expr::Cast(Cast::new(Box::new(factor), DataType::Float64)),
            Expr::Literal(ScalarValue::Boolean(Some(divide)), None),
        ];
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.scale.clone(), args),
        )))
    }
}

/// `shoal_interval_scale(interval, factor, divide)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalScale {
    signature: Signature,
}

impl Default for IntervalScale {
    fn default() -> Self {
        IntervalScale {
            signature: Signature::exact(
                vec![INTERVAL, DataType::Float64, DataType::Boolean],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for IntervalScale {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(INTERVAL)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let divide = matches!(
            args.args.get(2),
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
        );
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args[..2.min(args.args.len())])?;
        let [intervals, factors] = arrays.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{NAME} takes an interval and a factor"
            )));
        };
        let intervals = intervals
            .as_any()
            .downcast_ref::<IntervalMonthDayNanoArray>()
            .ok_or_else(|| DataFusionError::Internal(format!("{NAME}: not an interval")))?;
        let factors = factors
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| DataFusionError::Internal(format!("{NAME}: not a double")))?;
        let mut out = Vec::with_capacity(intervals.len());
        for r in 0..intervals.len() {
            if intervals.is_null(r) || factors.is_null(r) {
                out.push(None);
                continue;
            }
            let scaled = scale(intervals.value(r), factors.value(r), divide)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            out.push(Some(scaled));
        }
        crate::interval::column(out, scalar)
    }
}

/// PostgreSQL's `interval_mul` (or `interval_div` when `divide`).
fn scale(
    interval: IntervalMonthDayNano,
    factor: f64,
    divide: bool,
) -> Result<IntervalMonthDayNano, SqlError> {
    if divide && factor == 0.0 {
        return Err(SqlError::DivisionByZero);
    }
    let apply = |x: f64| if divide { x / factor } else { x * factor };
    let out_of_range = || SqlError::DatetimeOverflow("interval out of range".into());
    let whole = |x: f64| -> Result<i32, SqlError> {
        if x.is_nan() || x > f64::from(i32::MAX) || x < f64::from(i32::MIN) {
            return Err(out_of_range());
        }
        Ok(x as i32)
    };
    let months = whole(apply(f64::from(interval.months)))?;
    let mut days = whole(apply(f64::from(interval.days)))?;
    // Fractions cascade down: of a month into days, of a day into
    // seconds, each rounded to microseconds.
    let month_days =
        round_micros((apply(f64::from(interval.months)) - f64::from(months)) * DAYS_PER_MONTH);
    let mut seconds = round_micros(
        (apply(f64::from(interval.days)) - f64::from(days) + month_days - month_days.trunc())
            * SECS_PER_DAY,
    );
    if seconds.abs() >= SECS_PER_DAY {
        let carried = (seconds / SECS_PER_DAY).trunc();
        days = days.checked_add(carried as i32).ok_or_else(out_of_range)?;
        seconds -= carried * SECS_PER_DAY;
    }
    days = days
        .checked_add(month_days.trunc() as i32)
        .ok_or_else(out_of_range)?;
    let micros = (apply((interval.nanoseconds / 1000) as f64) + seconds * 1e6).round_ties_even();
    if micros.is_nan() || micros >= 9.2e18 || micros <= -9.2e18 {
        return Err(out_of_range());
    }
    let nanoseconds = (micros as i64).checked_mul(1000).ok_or_else(out_of_range)?;
    Ok(IntervalMonthDayNano::new(months, days, nanoseconds))
}

/// `x` rounded to six decimals (PostgreSQL's `TSROUND`).
fn round_micros(x: f64) -> f64 {
    (x * 1e6).round_ties_even() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(months: i32, days: i32, micros: i64) -> IntervalMonthDayNano {
        IntervalMonthDayNano::new(months, days, micros * 1000)
    }

    fn text(i: IntervalMonthDayNano) -> String {
        crate::interval::format(i.months, i.days, i.nanoseconds / 1000)
    }

    #[test]
    fn scales_as_postgres_does() {
        let hour = 3_600_000_000;
        for (interval, factor, divide, expected) in [
            (iv(0, 1, 0), 2.0, false, "2 days"),
            (iv(1, 0, 0), 1.5, false, "1 mon 15 days"),
            (iv(0, 1, 0), 1.5, false, "1 day 12:00:00"),
            (iv(0, 0, hour), 2.5, false, "02:30:00"),
            (iv(0, 1, 0), 2.0, true, "12:00:00"),
            (iv(1, 0, 0), 3.0, true, "10 days"),
            (iv(0, 0, hour), -1.0, false, "-01:00:00"),
            (iv(14, 3, hour), 0.5, false, "7 mons 1 day 12:30:00"),
            (iv(0, 0, 1), 1.0 / 3.0, false, "00:00:00"),
        ] {
            assert_eq!(
                text(scale(interval, factor, divide).unwrap()),
                expected,
                "{} {} {factor}",
                text(interval),
                if divide { "/" } else { "*" }
            );
        }
    }

    #[test]
    fn refuses_what_postgres_refuses() {
        assert!(matches!(
            scale(iv(0, 1, 0), 0.0, true),
            Err(SqlError::DivisionByZero)
        ));
        assert!(matches!(
            scale(iv(i32::MAX, 0, 0), 2.0, false),
            Err(SqlError::DatetimeOverflow(_))
        ));
        assert!(matches!(
            scale(iv(0, 1, 0), f64::NAN, false),
            Err(SqlError::DatetimeOverflow(_))
        ));
    }
}
