/**
 * A one-line progress bar on stderr: redrawn in place on a terminal, one line per finished item otherwise
 * (CI logs stay readable). Results go to stdout, so piping the table is unaffected.
 */
export interface ProgressBar {
  update(done: number, label: string): void;
  finishItem(line: string): void;
  end(): void;
}

export function progressBar(total: number, stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  const interactive = Boolean(stream.isTTY);
  const width = 30;
  const draw = (done: number, label: string) => {
    const filled = Math.round((width * done) / Math.max(total, 1));
    stream.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} ${label}\x1b[K`);
  };
  return {
    update(done, label) {
      if (interactive) draw(done, label);
    },
    finishItem(line) {
      if (interactive) stream.write('\r\x1b[K');
      stream.write(`${line}\n`);
    },
    end() {
      if (interactive) stream.write('\r\x1b[K');
    },
  };
}
