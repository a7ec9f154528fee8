/**
 * The teaching docs stay true to the code: every relative link in docs/,
 * examples/README.md and README.md points to a file that exists, every
 * `#anchor` into a Markdown file names one of its headings, and every link
 * whose text names code (`acceptKey()`, `FrameDecoder.push()`, `Opcode`) lands
 * in a file that defines that name. Renaming a function without updating the
 * chapter that explains it fails here.
 */
import { assert } from "@std/assert";

const ROOT = new URL("../", import.meta.url);

async function markdownFiles(): Promise<URL[]> {
  const files = [new URL("README.md", ROOT), new URL("examples/README.md", ROOT)];
  for await (const entry of Deno.readDir(new URL("docs/", ROOT))) {
    if (entry.isFile && entry.name.endsWith(".md")) files.push(new URL(`docs/${entry.name}`, ROOT));
  }
  return files;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/`/g, "").replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function headings(markdown: string): Set<string> {
  const found = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const match = !fenced && /^#{1,6} (.+)$/.exec(line);
    if (match) found.add(slug(match[1]));
  }
  return found;
}

/** The code names a link's text claims the target defines: `a.b()` → ["a", "b"]. */
function namesIn(text: string): string[] {
  const code = /^`([A-Za-z_$][\w$.]*)(\(\))?`$/.exec(text);
  if (!code || /\.(ts|md|html|conf)$/.test(code[1])) return []; // a file name, not a code name
  return code[1].split(".").filter((name) => name.length > 0);
}

Deno.test("docs: relative links resolve, anchors exist, linked names are defined there", async () => {
  const problems: string[] = [];
  let checked = 0;
  for (const file of await markdownFiles()) {
    const markdown = await Deno.readTextFile(file);
    const prose = markdown.replace(/```[\s\S]*?```/g, "");
    for (const [, text, target] of prose.matchAll(/\[([^\]]+)\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue; // https:, mailto:
      const [path, anchor] = target.split("#");
      const where = `${file.pathname.slice(ROOT.pathname.length)}: [${text}](${target})`;
      const url = path === "" ? file : new URL(path, file);
      let content: string | undefined;
      try {
        const info = await Deno.stat(url);
        if (info.isFile) content = await Deno.readTextFile(url);
      } catch {
        problems.push(`${where}: no such file`);
        continue;
      }
      checked++;
      if (anchor && content !== undefined && url.pathname.endsWith(".md")) {
        if (!headings(content).has(anchor)) problems.push(`${where}: no heading #${anchor}`);
      }
      if (content !== undefined && url.pathname.endsWith(".ts")) {
        for (const name of namesIn(text)) {
          const defined = new RegExp(
            `(function|class|interface|type|const|let)\\s+${name}\\b|^\\s*(static\\s+|async\\s+|get\\s+)*#?${name}\\s*[(<:=]`,
            "m",
          );
          if (!defined.test(content)) problems.push(`${where}: ${name} is not defined there`);
        }
      }
    }
  }
  assert(checked > 100, `only ${checked} links checked`);
  assert(problems.length === 0, problems.join("\n"));
});
