/**
 * What the demo prints once everything runs: where things are, and commands to try with the real
 * ports and paths filled in. The README's Quickstart shows the same commands with placeholders
 * (<data-dir>, <coordinator-url>, <cloud-url>, <mqtt-port>); test/integration/quickstart.test.ts
 * checks that the two agree.
 */
import { join } from 'node:path'

export interface GuideValues {
  dataDir: string
  cloudUrl: string
  coordinatorUrl: string
  mqttPort: number
  pids: { demo: number; cloudShim: number; coordinator: number }
  /** The setpoint the thermostat was deployed with (above the room's temperature), and one below it. */
  setpoint: number
  lowerSetpoint: number
  keep: boolean
}

export function guide(v: GuideValues): string {
  const coordinatorDir = sh(join(v.dataDir, 'coordinator'))
  const setpoint = (n: number): string => sh(JSON.stringify({ state: { desired: { setpoint: n } } }))
  return `
Endpoints
  cloud shim API     ${v.cloudUrl}   log: ${join(v.dataDir, 'cloud.log')}
  coordinator API    ${v.coordinatorUrl}   log: ${join(v.dataDir, 'coordinator.log')}
  coordinator MQTT   mqtt://127.0.0.1:${v.mqttPort}   (anonymous clients on this machine may read gateway/# and things/+/telemetry)
  data               ${v.dataDir}
  pids               demo=${v.pids.demo} cloud-shim=${v.pids.cloudShim} coordinator=${v.pids.coordinator}

Try these in another terminal, in this directory:

  # heater-1's shadow: the thermostat task wants it on ("desired"), the plug says it is ("reported")
  npx edge-coordinator shadow get heater-1 --data-dir ${coordinatorDir}

  # lower the setpoint below the room's temperature: the shadow delta runs the thermostat task,
  # which switches the heater off at once (see the status line); setpoint ${v.setpoint} switches it on again
  npx edge-coordinator shadow update heater-1 --name thermostat --data-dir ${coordinatorDir} --payload ${setpoint(v.lowerSetpoint)}

  # the thermostat's log: every switch, and the settings you changed (Ctrl-C to leave)
  npx edge-task logs thermostat -f --coordinator ${v.coordinatorUrl}

  # the deployment that installed the three tasks, as the cloud shim sees it
  npx edge deploy ls --cloud ${v.cloudUrl}

  # the devices' telemetry, and the health-check task's report every 30 s
  mosquitto_sub -h 127.0.0.1 -p ${v.mqttPort} -t 'things/+/telemetry' -t gateway/health -v

Ctrl-C stops everything${v.keep ? '; the data directory is kept.' : ` and removes ${v.dataDir} (--keep keeps it).`}
`
}

/** Quotes a word for a POSIX shell when it needs it, so printed commands can be pasted as they are. */
export function sh(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`
}
