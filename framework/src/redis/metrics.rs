//! The metrics of an app's Redis pools: one collector for all of them, so that each metric
//! is one family with a `pool` label, read from the pools (their home pool and their
//! threads' pools added up) when the metrics are scraped.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

use super::pool::Totals;
use super::Redis;

/// The collector of an app's Redis pools (see [`Redis::metrics`]).
#[derive(Debug)]
pub(crate) struct PoolMetrics(pub(crate) Redis);

/// Encodes one family: `help` under `name`, one sample per pool.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    pools: &[(String, M)],
    name: &str,
    help: &str,
) -> Result<(), std::fmt::Error> {
    let Some((_, first)) = pools.first() else {
        return Ok(());
    };
    let mut family = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (pool, metric) in pools {
        metric.encode(family.encode_family(&[("pool", pool.as_str())])?)?;
    }
    Ok(())
}

impl Collector for PoolMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pools = self.0.built();
        let states: Vec<(String, Totals)> = pools
            .iter()
            .map(|p| (p.config().name.clone(), p.totals()))
            .collect();
        let gauges = |f: fn(&Totals) -> u32| -> Vec<(String, ConstGauge)> {
            states
                .iter()
                .map(|(n, s)| (n.clone(), ConstGauge::new(i64::from(f(s)))))
                .collect()
        };
        let counters = |f: fn(&Totals) -> u64| -> Vec<(String, ConstCounter)> {
            states
                .iter()
                .map(|(n, s)| (n.clone(), ConstCounter::new(f(s))))
                .collect()
        };
        let e = &mut encoder;
        family(
            e,
            &gauges(|s| s.connections.saturating_sub(s.idle)),
            "rondo_redis_connections_in_use",
            "Pooled Redis connections checked out",
        )?;
        family(
            e,
            &gauges(|s| s.idle),
            "rondo_redis_connections_idle",
            "Pooled Redis connections idle",
        )?;
        family(
            e,
            &counters(|s| s.get_direct),
            "rondo_redis_checkouts_direct",
            "Check-outs served without waiting",
        )?;
        family(
            e,
            &counters(|s| s.get_waited),
            "rondo_redis_checkouts_waited",
            "Check-outs that had to wait for a connection",
        )?;
        family(
            e,
            &counters(|s| s.get_timed_out),
            "rondo_redis_checkout_timeouts",
            "Check-outs that timed out (the request got 503)",
        )?;
        let waited: Vec<(String, ConstCounter<f64>)> = states
            .iter()
            .map(|(n, s)| {
                let secs = s.wait_time.as_secs_f64();
                (n.clone(), ConstCounter::new(secs))
            })
            .collect();
        family(
            e,
            &waited,
            "rondo_redis_checkout_wait_seconds",
            "Time spent waiting for a pooled connection",
        )?;
        family(
            e,
            &counters(|s| s.created),
            "rondo_redis_connections_created",
            "Redis connections opened",
        )?;
        family(
            e,
            &counters(|s| s.broken),
            "rondo_redis_connections_broken",
            "Redis connections dropped as broken",
        )?;
        let latency: Vec<(String, Histogram)> = pools
            .iter()
            .map(|p| (p.config().name.clone(), p.command_metrics().latency.clone()))
            .collect();
        family(
            e,
            &latency,
            "rondo_redis_command_duration_seconds",
            "Redis command latency, failures included",
        )?;
        for (index, kind) in ["dropped", "timeout", "server"].into_iter().enumerate() {
            let failures: Vec<(String, ConstCounter)> = pools
                .iter()
                .map(|p| {
                    (
                        p.config().name.clone(),
                        ConstCounter::new(p.command_metrics().failures[index].get()),
                    )
                })
                .collect();
            family(
                e,
                &failures,
                &format!("rondo_redis_command_failures_{kind}"),
                "Redis commands that failed: connection dropped, no answer in time, or an error reply",
            )?;
        }
        Ok(())
    }
}
