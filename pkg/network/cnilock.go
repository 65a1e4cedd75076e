//go:build !race && !deadlocks

package network

// serializeCNI: see cnilock_race.go.
const serializeCNI = false
