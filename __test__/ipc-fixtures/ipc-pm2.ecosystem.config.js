"use strict";
// PM2 ecosystem of the ipc-pm2 test: 3 cluster instances of pm2-app.js.
const path = require("node:path");

module.exports = {
  apps: [
    {
      name: "ipc-pm2-app",
      script: path.join(__dirname, "pm2-app.js"),
      instances: 3,
      exec_mode: "cluster",
      kill_timeout: 3000,
      max_restarts: 3,
      env: { DEBUG: "" },
    },
  ],
};
