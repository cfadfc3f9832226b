//! tessera: user accounts and authentication as one binary — registration, sign-in with JWT
//! access and refresh tokens, sessions, profiles and roles — on an embedded SQLite file or on
//! PostgreSQL or MySQL/MariaDB.
//!
//! Data flows one way: [`http`] parses and answers, [`service`] decides and runs each operation
//! in one transaction through [`storage`], whose rows are the [`domain`] model. [`app`] and
//! [`commands`] wire them together.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod domain;
pub mod http;
pub mod mail;
pub mod service;
pub mod storage;
pub mod telemetry;
