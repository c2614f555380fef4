//! Apache ZooKeeper's client protocol ("jute" frames).
