// Package downsample turns one block into a block of lower resolution: for
// every series, one series per aggregate (block.AggregateLabel: count, sum,
// min, max, counter) with one sample per window. Block reads a local block
// directory and writes the new one beside it; the compactor decides which
// blocks to downsample, uploads the result and marks what it replaces.
//
// It imports block, for the meta and the aggregate vocabulary, and must not
// import the bucket or the compactor: it works on local directories only.
package downsample
