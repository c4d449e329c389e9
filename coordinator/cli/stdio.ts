let installed = false

/**
 * `edge-task ls | head -1`: once the reader has closed the pipe, every write fails with EPIPE,
 * which Node raises as an 'error' event on the stream and, unhandled, as a crash with a stack.
 * A closed pipe means nobody wants more output, so the CLI stops quietly, the way Unix tools end
 * on SIGPIPE (which Node ignores). Other write errors still surface.
 */
export function exitQuietlyOnClosedPipe(): void {
  if (installed) return
  installed = true
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err
      process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0)
    })
  }
}
