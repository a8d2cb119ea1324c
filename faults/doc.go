// Package faults decides what tdsproxy does to a connection: it holds the
// scenario catalog, the rules that match connections and phases, and the
// generic chaos faults. It never touches a socket: package proxy owns the
// connections, asks faults at each phase event (proxy.Decider) and acts on
// the answer (proxy.Verdict), so every fault here is testable with plain
// values, channels and a fake clock.
//
// # Generic faults (stages)
//
// The Toxiproxy-like faults are proxy.Stage values that shape one
// direction's bytes once a verdict attaches them: latency, bandwidth,
// slicer, timeout (blackhole), reset, limit_data and slow_close, each
// optionally starting only after N bytes of its direction (Delayed, option
// "after_bytes"). Build them from Go with NewLatency, NewBandwidth, ... or
// from strings with ParseStage/NewStage; StageKinds and StageHelp describe
// the kinds and their options.
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
