import { execFileSync } from "node:child_process"
import * as fs from "node:fs"

/** Child-process tests run the built JavaScript, exactly as users do: build it once first. */
export default function setup(): void {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
    stdio: "inherit",
  })
  // What `npm run build` copies besides the compiled modules: the console's stylesheet and script.
  fs.cpSync("src/console/assets", "dist/console/assets", { recursive: true })
}
