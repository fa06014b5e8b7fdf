/**
 * Appends each record as one JSON line (request and response together) to
 * a file, rotated by size: when the next line would take the file past
 * `maxBytes`, path.(keep-1) -> path.keep, ..., path -> path.1, and a new
 * file begins (`keep` 0: the full file is removed). One record at a time,
 * so lines are in the order they were logged.
 *
 * A failed write (full disk, permissions, a missing directory) is the
 * record's `sink_error`; the file is opened again for the next record, and
 * a line cut off by the failure is ended before the next is appended.
 */
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { payloadLine, type PayloadRecord } from './record';
import type { PayloadSink, SinkOutcome } from './sink';

export interface FileSinkOptions {
  /** Size past which the file is rotated (default 100 MiB). */
  maxBytes?: number;
  /** Rotated files kept: path.1 .. path.keep (default 3). */
  keep?: number;
}

export class FileJsonlSink implements PayloadSink {
  readonly name = 'file';
  readonly concurrency = 1;
  private readonly maxBytes: number;
  private readonly keep: number;
  private handle: FileHandle | undefined;
  private size = 0;
  private writing: Promise<SinkOutcome> = Promise.resolve('sent');
  private closed = false;

  constructor(
    readonly path: string,
    opts: FileSinkOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? 100 * 1024 * 1024;
    this.keep = opts.keep ?? 3;
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1 || !Number.isInteger(this.keep) || this.keep < 0) {
      throw new Error('payload log file sink needs an integer maxBytes >= 1 and keep >= 0');
    }
  }

  send(record: PayloadRecord): Promise<SinkOutcome> {
    if (this.closed) return Promise.resolve('sink_error');
    // The logger sends one record at a time; chaining keeps the order even if it did not.
    this.writing = this.writing.then(() => this.append(record));
    return this.writing;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.writing;
    await this.release();
  }

  private async append(record: PayloadRecord): Promise<SinkOutcome> {
    try {
      const line = Buffer.from(payloadLine(record), 'utf8');
      let file = await this.open();
      if (this.size > 0 && this.size + line.length > this.maxBytes) {
        await this.rotate();
        file = await this.open();
      }
      await file.appendFile(line);
      this.size += line.length;
      return 'sent';
    } catch {
      await this.release();
      return 'sink_error';
    }
  }

  private async open(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    const file = await open(this.path, 'a+');
    try {
      let { size } = await file.stat();
      if (size > 0) {
        const last = Buffer.alloc(1);
        await file.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) {
          await file.appendFile('\n');
          size += 1;
        }
      }
      this.size = size;
    } catch (e) {
      await file.close().catch(() => undefined);
      throw e;
    }
    this.handle = file;
    return file;
  }

  private async rotate(): Promise<void> {
    await this.release();
    if (this.keep === 0) {
      await rm(this.path, { force: true });
      return;
    }
    for (let i = this.keep - 1; i >= 1; i--) {
      await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
    }
    await rename(this.path, `${this.path}.1`);
  }

  private async release(): Promise<void> {
    const file = this.handle;
    this.handle = undefined;
    await file?.close().catch(() => undefined);
  }
}
