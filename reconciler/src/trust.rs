//! Trusted keys and signature verification (owner: the trust work).
