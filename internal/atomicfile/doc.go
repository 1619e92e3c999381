// Package atomicfile replaces small local files so that a crash leaves the
// old or the new content, never a torn file: block meta.json files and the
// shipper's record of shipped blocks are written this way.
//
// It imports nothing of Atoll; bucket, block and ship import it.
package atomicfile
