//go:build race

package dht

// raceEnabled scales the big tests down under the race detector, which
// slows them about tenfold; the small sizes still exercise every path.
const raceEnabled = true
