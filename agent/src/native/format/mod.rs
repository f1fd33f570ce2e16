//! File formats the native executor can merge (to be written).
