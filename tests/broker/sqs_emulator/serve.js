// Starts the SQS emulator on 127.0.0.1 for the SQS backend's tests.
//   node serve.js [PORT]     PORT 0 or absent: a free port chosen by the kernel
// Prints "listening PORT" on stdout once it accepts connections. The test binary that
// starts it kills it (and the kernel does, should that binary die: PR_SET_PDEATHSIG).
"use strict";
const { createSqsServer } = require("local-aws-sqs");

const port = Number(process.argv[2] || 0);
createSqsServer({
  port,
  hostname: "127.0.0.1",
  emulateQueueCreationLifecycle: false,
  emulateLazyQueues: false,
}).then((server) => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
