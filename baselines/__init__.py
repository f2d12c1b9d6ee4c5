"""Methods HKT is compared with. Each module follows the contract in `hkt.methods`."""
