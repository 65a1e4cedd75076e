//go:build race || deadlocks

package network

// serializeCNI is true in race (and deadlocks) builds, where go-cni swaps
// its RWMutex for go-deadlock's. That one tells goroutines apart with
// github.com/petermattis/goid, which returns 0 for every goroutine on
// Go 1.26, so two concurrent Setup calls look like a recursive lock and the
// process exits. Serializing our calls into go-cni avoids it; ordinary
// builds keep full concurrency.
const serializeCNI = true
