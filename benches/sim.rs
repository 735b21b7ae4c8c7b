//! How fast the simulator runs the real core: simulated events (deliveries of bytes,
//! timers, dials, client lines) per second of wall time, for steady chatter on random
//! graphs of degree 6-8. `cargo bench --bench sim`; figures in docs/SIMULATION.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use p2pchat::sim::graph::Family;
use p2pchat::sim::net::NetConfig;
use p2pchat::sim::scenario::{self, Kind, Spec};

fn spec(nodes: usize) -> Spec {
    Spec {
        kind: Kind::Steady,
        family: Family::Random,
        nodes,
        lines: 10,
        seed: 1,
        net: NetConfig::default(),
    }
}

fn simulator(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    for nodes in [100, 1_000] {
        let spec = spec(nodes);
        // The same spec gives the same run, so one run tells the event count of all.
        let events = scenario::run(&spec).expect("the scenario passes").events;
        group.throughput(Throughput::Elements(events));
        group.bench_with_input(
            BenchmarkId::new("steady chatter, events", nodes),
            &spec,
            |b, spec| b.iter(|| scenario::run(spec).expect("the scenario passes").events),
        );
    }
    group.finish();
}

criterion_group!(benches, simulator);
criterion_main!(benches);
