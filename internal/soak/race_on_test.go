//go:build race

package soak_test

// raceEnabled: the race detector's shadow memory grows with the heap and
// is not returned to the OS, so RSS gets more slack under -race.
const raceEnabled = true
