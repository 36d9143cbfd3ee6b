import { execFileSync } from "node:child_process"

/** Child-process tests run the built JavaScript, exactly as users do: build it once first. */
export default function setup(): void {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
    stdio: "inherit",
  })
}
