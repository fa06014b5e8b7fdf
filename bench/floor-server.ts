/**
 * The floor for the HTTP path: the least a Node server can do to answer
 * POST /v1/classify {"pixels": [784 numbers]} with one model: node:http,
 * JSON.parse, normalize, onnxruntime-node session.run, softmax, argmax.
 * No routing, metrics, validation or logging.
 *
 *   node dist/bench/floor-server.js <model dir> <port>
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as ort from 'onnxruntime-node';

async function main(): Promise<void> {
  const [dir, portArg] = process.argv.slice(2);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const { mean, std } = manifest.input.normalization;
  const labels: string[] = manifest.labels;
  const server = http.createServer((req, res) => {
    if (req.method === 'GET') return void res.end('ok'); // readiness, for the benchmark
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const pixels = JSON.parse(Buffer.concat(chunks).toString()).pixels as number[];
      const input = new Float32Array(784);
      for (let i = 0; i < 784; i++) input[i] = (pixels[i] / 255 - mean) / std;
      void session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 1, 28, 28]) }).then((out) => {
        const logits = out[session.outputNames[0]].data as Float32Array;
        let best = 0;
        for (let k = 1; k < logits.length; k++) if (logits[k] > logits[best]) best = k;
        let sum = 0;
        for (let k = 0; k < logits.length; k++) sum += Math.exp((logits[k] - logits[best]) / manifest.output.temperature);
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ label: labels[best], labelIndex: best, confidence: 1 / sum }));
      });
    });
  });
  server.listen(Number(portArg), '127.0.0.1', () => process.stdout.write('ready\n'));
}

void main();
