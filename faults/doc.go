// Package faults decides what tdsproxy does to a connection: it holds the
// scenario catalog, the rules that match connections and phases, and the
// generic chaos faults. It never touches a socket: package proxy owns the
// connections, asks faults at each phase event (proxy.Decider) and acts on
// the answer (proxy.Verdict), so every fault here is testable with plain
// values, channels and a fake clock.
//
// # Scenarios: one table
//
// A scenario (scenario.go) is one documented cause of error 10054
// (docs/protocol.md) and one complete value in the table scenarios: its
// texts and fix, the phase where it acts, its options (Option: key, run
// flag, type, default, help; bound by name into the rule's struct through
// `opt` tags, bind.go), its per-connection state and decision
// (scenarioRule, scenarioConn), its hooks at accept (acceptActor,
// acceptGater: the listener pause of delayed-accept's backlog form), how it
// is recognised in a record (Diagnose; ByElimination when its recogniser
// matches closes other scenarios explain more specifically), the property
// `tdsproxy probe` judges it by (ProbeCheck), and what `tdsproxy lab` and
// the soak test need (LabSetup, SoakCase, labsetup.go). The CLI's flags,
// help and examples, the lab, hold, soak, the probe and diagnosis iterate
// over Scenarios(); adding a scenario is one entry plus its tests. The scenarios live in scenario_tls.go
// (protocol-mismatch, cipher-mismatch, weak-cert-hash), scenario_dhe.go and
// scenario_delayed.go.
//
// Rules (rule.go, rule_input.go) match connections and carry a scenario or
// a generic action; a bad rule is a RuleError whose Key names the key at
// fault. The Engine (engine.go) holds each proxy's rules and decides.
//
// # Generic faults (stages)
//
// The Toxiproxy-like faults are proxy.Stage values that shape one
// direction's bytes once a verdict attaches them: latency, bandwidth,
// slicer, timeout (blackhole), reset, limit_data and slow_close, each
// optionally starting only after N bytes of its direction (Delayed, option
// "after_bytes"). Build them from Go with NewLatency, NewBandwidth, ... or
// from strings with ParseStage/NewStage; StageKinds and StageHelp describe
// the kinds and their options. Each stage is one file (stage_*.go); the
// registry (stage_registry.go) binds options by name into the config
// structs' fields, and size.go parses sizes and rates.
//
// A stage value belongs to one connection and one direction: it keeps
// state between calls and is not safe for concurrent use. Parse a
// configuration once (StageSpec) and call StageSpec.New for every
// connection and direction that gets the fault.
//
// Stages never drop or reorder bytes (except timeout, reset and limit_data,
// by design), return ctx.Err() promptly when their context ends, and never
// keep the caller's chunk: emit receives sub-slices of it, valid only
// during the emit call.
//
// # Time and randomness
//
// Stages sleep through a Clock (RealClock in production, FakeClock in
// tests) and draw from a Rand: a seeded, mutex-guarded PCG where every call
// consumes exactly one draw, so that a seed replays a run. Seed 0 picks a
// random seed and Rand.Seed reports it, so a run that failed can be
// replayed.
package faults
