//! The simulated disk (see the module docs once written).
