"use strict";
// Run with `npx pm2 start ecosystem.config.js` after `npm install -g @socket.io/pm2`
// (or with the pm2 binary of @socket.io/pm2 installed locally).
//
// @socket.io/pm2's daemon listens on PM2_PORT (3000 by default) with sticky sessions and runs the
// stock setupPrimary(); every instance uses socket.io-cluster-rs, which finds no hub of its own there
// and speaks the stock protocol over PM2's IPC channel (adapter.transport === "ipc").
const path = require("node:path");

module.exports = {
  apps: [
    {
      name: "socket-io-app",
      script: path.join(__dirname, "app.js"),
      instances: "max", // or a number, e.g. 3
      exec_mode: "cluster",
      // Time between SIGINT and SIGKILL on reload/stop: enough for io.close() to say goodbye.
      kill_timeout: 3000,
    },
  ],
};
