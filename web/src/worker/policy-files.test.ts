import { describe, expect, it } from "vitest";
import { artefactUrl, gatherPolicy, liftUrl, INLINE_PACK, parseExtends, relativePath, ROOT_PACK } from "./policy-files.js";

const files: Record<string, string> = {
  "/policies/base/pack.yaml": "pack: base\nrules: []\n",
  "/policies/python/pack.yaml": "pack: python\nextends: [../base]  # the base pack\nrules: []\n",
  "/policies/app/pack.yaml": "pack: app\nextends:\n  - ../python\n  - '../base'\nrules: []\n",
};
const fetchText = async (u: URL) => {
  const t = files[u.pathname];
  if (t === undefined) throw new Error(`404 ${u.pathname}`);
  return t;
};
const BASE = "http://127.0.0.1:8080/";

describe("parseExtends", () => {
  it("reads both YAML list forms and ignores comments", () => {
    expect(parseExtends(files["/policies/python/pack.yaml"])).toEqual(["../base"]);
    expect(parseExtends(files["/policies/app/pack.yaml"])).toEqual(["../python", "../base"]);
    expect(parseExtends("pack: x\nextends: ../one\n")).toEqual(["../one"]);
    expect(parseExtends("pack: x\nrules: []\n")).toEqual([]);
  });
});

describe("gatherPolicy", () => {
  it("follows extends once per file", async () => {
    const g = await gatherPolicy({ packs: ["/policies/app/"] }, BASE, fetchText);
    expect(g.root).toBe("policies/app/pack.yaml");
    expect(Object.keys(g.files).sort()).toEqual(["policies/app/pack.yaml", "policies/base/pack.yaml", "policies/python/pack.yaml"]);
  });

  it("combines packs, inline rules and disabled rules in one root", async () => {
    const g = await gatherPolicy({ packs: ["/policies/python/pack.yaml"], inline: "rules:\n  - id: custom.a\n", disable: ["python.eval"] }, BASE, fetchText);
    expect(g.root).toBe(ROOT_PACK);
    expect(g.files[INLINE_PACK]).toBe("pack: custom\nrules:\n  - id: custom.a\n");
    expect(g.inlineLineOffset).toBe(1);
    expect(g.files[ROOT_PACK]).toBe('pack: root\nextends: ["../../policies/python/pack.yaml", "../custom/pack.yaml"]\ndisable: ["python.eval"]\nrules: []\n');
  });

  it("refuses an empty source and reports a missing pack", async () => {
    await expect(gatherPolicy({}, BASE, fetchText)).rejects.toThrow("no pack given");
    await expect(gatherPolicy({ packs: ["/nope/"] }, BASE, fetchText)).rejects.toThrow("404 /nope/pack.yaml");
  });
});

describe("relativePath", () => {
  it("walks up from the file's folder", () => {
    expect(relativePath("inline/root/pack.yaml", "policies/python/pack.yaml")).toBe("../../policies/python/pack.yaml");
    expect(relativePath("a/b/pack.yaml", "a/c/pack.yaml")).toBe("../c/pack.yaml");
  });

  it("names the artefact next to a single root pack, and none for synthesised roots", () => {
    const g = (root: string) => ({ files: {}, root, inlineLineOffset: 0 });
    expect(artefactUrl(g("policies/python/pack.yaml"), BASE)?.pathname).toBe("/policies/python/pack.wardpol");
    expect(artefactUrl(g("docs/p/app.yml"), BASE)?.pathname).toBe("/docs/p/app.wardpol");
    expect(artefactUrl(g("inline/root/pack.yaml"), BASE)).toBeNull();
    expect(artefactUrl(g("inline/custom/pack.yaml"), BASE)).toBeNull();
  });

  it("names the lift artefact per model next to the artefact, and none for odd model names", () => {
    const g = (root: string) => ({ files: {}, root, inlineLineOffset: 0 });
    expect(liftUrl(g("policies/python/pack.yaml"), "ward-tiny-code", BASE)?.pathname).toBe("/policies/python/pack.ward-tiny-code.wardlift");
    expect(liftUrl(g("inline/root/pack.yaml"), "ward-tiny-code", BASE)).toBeNull();
    expect(liftUrl(g("policies/python/pack.yaml"), "../x", BASE)).toBeNull();
    expect(liftUrl(g("policies/python/pack.yaml"), "a/b", BASE)).toBeNull();
  });
});
