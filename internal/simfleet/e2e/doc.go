// Package e2e holds the scheduler's end-to-end test: three real berth
// agents on real containerd (zones a, b, c) against the cluster endpoint,
// driven with the AWS SDK. It has no code outside its test.
package e2e
