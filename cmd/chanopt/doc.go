// Command chanopt slims pretrained ONNX CNNs; see the README for the commands.
//
// It owns the command line: flags turned into optimizer.Options (shrink) or into calls of the
// packages below it, progress lines, reports, charts and exit codes (0 ok, 1 failure, 2 usage;
// every error one line). It must not hold pipeline logic the packages lack.
//
// What it guarantees around the files it touches:
//   - Every flag is checked before any work: ranges, NaN and infinities, --input-shape against
//     the model's inputs and fixed dims, labels against the model's classes (checks.go).
//   - Every output (-o, --report, --plot, run -o) is checked before any work against every input
//     (the model, its external data, --data, --labels, --input) and the other outputs, by device
//     and inode or by resolved path, and must go into an existing writable directory. Outputs are
//     committed together: all temporary files (short names beside their destinations) are
//     written, then renamed under a lock on their directories (outputs.go).
//   - SIGINT and SIGTERM cancel the run, remove the temporary files and exit 130 or 143 with one
//     line (signals.go).
//   - A model whose batch is fixed at 1 runs on batches through a copy with a symbolic batch; the
//     file written keeps the fixed dim (batch.go).
package main
