//! End-to-end benchmark of real `p2pchat` daemons (being written).

fn main() {}
