//! The reconciler against a fake API server on loopback: the exact
//! requests each scenario sends, in order, and what it makes of the
//! answers. Each test drives one or more reconciles on a manual clock.

mod commands;
mod invalid;
mod new_rollout;
mod promotion;
mod restart;
mod rollback;
mod support;
