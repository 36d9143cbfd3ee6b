import * as fs from "node:fs"
import * as path from "node:path"

/**
 * A directory laid out like a mounted Kubernetes Secret: each file is a symlink into `..data`,
 * itself a symlink to a versioned directory; `swap` writes a new versioned directory and renames a
 * new `..data` over the old one (atomically, as the kubelet does).
 */
export class SecretDir {
  private n = 0
  constructor(readonly dir: string) {}

  swap(files: Readonly<Record<string, Buffer | string>>): void {
    const version = `..v${++this.n}`
    fs.mkdirSync(path.join(this.dir, version))
    for (const [name, bytes] of Object.entries(files))
      fs.writeFileSync(path.join(this.dir, version, name), bytes)
    fs.symlinkSync(version, path.join(this.dir, "..data_tmp"))
    fs.renameSync(path.join(this.dir, "..data_tmp"), path.join(this.dir, "..data"))
    for (const name of Object.keys(files)) {
      const link = path.join(this.dir, name)
      if (!fs.existsSync(link)) fs.symlinkSync(path.join("..data", name), link)
    }
  }

  file(name: string): string {
    return path.join(this.dir, name)
  }
}
