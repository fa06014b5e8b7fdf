// Classify one image over gRPC with a plain Node client: @grpc/grpc-js and
// @grpc/proto-loader (the service's own dependencies) and the repository's
// proto/ files, loaded at run time; no generated code.
//
// From the repository root, with the service running (npm start):
//   node examples/grpc-classify.mjs <image file> [address, default localhost:50051] [routing key]
// prints the Classification as one JSON line (field names as in
// proto/classifier/v1/classifier.proto) and exits 0, or prints the gRPC
// error (with the service's x-error-code) and exits 1.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const [image, address = 'localhost:50051', routingKey = ''] = process.argv.slice(2);
if (!image) {
  console.error('usage: node examples/grpc-classify.mjs <image file> [address] [routing key]');
  process.exit(2);
}

const definition = protoLoader.loadSync('classifier/v1/classifier.proto', {
  includeDirs: [fileURLToPath(new URL('../proto', import.meta.url))],
  keepCase: true, // field names as in the .proto: top_k, label_index, ...
  longs: Number,
  defaults: true,
  oneofs: false, // no virtual oneof names in the printed answer
});
const { classifier } = grpc.loadPackageDefinition(definition);
const client = new classifier.v1.ProductClassifier(address, grpc.credentials.createInsecure());

const request = { image: { encoded: readFileSync(image) }, top_k: 2, routing_key: routingKey };
client.Classify(request, { deadline: Date.now() + 10_000 }, (err, answer) => {
  client.close();
  if (err) {
    const code = err.metadata?.get('x-error-code')[0];
    console.error(`${grpc.status[err.code]}${code ? ` (${code})` : ''}: ${err.details}`);
    process.exitCode = 1;
    return;
  }
  // An abstained answer has no label and no label_index (see `abstained`).
  const { top, timings, ...rest } = answer; // proto-loader puts repeated fields first
  console.log(JSON.stringify({ ...rest, top, timings }));
});
