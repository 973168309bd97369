// Loads the published GraphQL schema and the console's example operations with graphql-js,
// the reference implementation, and reports everything it refuses. Run by the Rust test
// `the_published_schema_and_the_console_examples_pass_graphql_js` (tests/e2e/inputs_hardening.rs):
//
//   node check.mjs <schema.graphql> <examples.json>
//
// Prints one line per problem and exits 1 if there is any; prints a summary and exits 0
// otherwise.
import { readFileSync } from "node:fs";
import {
  buildSchema,
  getNamedType,
  getVariableValues,
  isInputObjectType,
  isObjectType,
  isInterfaceType,
  Kind,
  GraphQLError,
  parse,
  validate,
  validateSchema,
  valueFromAST,
} from "graphql";

const [schemaPath, examplesPath] = process.argv.slice(2);
if (!schemaPath || !examplesPath) {
  console.error("usage: node check.mjs <schema.graphql> <examples.json>");
  process.exit(2);
}
const problems = [];

// 1. The schema builds and is valid.
let schema;
try {
  schema = buildSchema(readFileSync(schemaPath, "utf8"));
} catch (e) {
  console.log(`schema: does not build: ${e.message}`);
  process.exit(1);
}
for (const e of validateSchema(schema)) problems.push(`schema: ${e.message}`);

// The server's `Krw` rules, so that an example sending a number (or "1e9") is refused here
// as the gateway refuses it: canonical digits, optional leading "-", within i64.
const krw = schema.getType("Krw");
if (!krw) problems.push("schema: has no `Krw` scalar for amounts of money");
else {
  const MIN = -(2n ** 63n), MAX = 2n ** 63n - 1n;
  const check = (v) => {
    if (typeof v !== "string" || !/^(0|-?[1-9][0-9]*)$/.test(v) || BigInt(v) < MIN || BigInt(v) > MAX) {
      throw new GraphQLError(`Krw must be a string of digits within i64, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  krw.parseValue = check;
  krw.parseLiteral = (ast) => {
    if (ast.kind !== Kind.STRING) throw new GraphQLError(`Krw must be a string literal, got ${ast.kind}`);
    return check(ast.value);
  };
  krw.serialize = check;
}

// 2. Every default value is valid for its type (graphql-js 16 does not check defaults when
// building; a default it cannot coerce, such as an `Int` beyond 32 bits, is an error).
const checkDefault = (where, arg) => {
  const literal = arg.astNode && arg.astNode.defaultValue;
  if (literal && valueFromAST(literal, arg.type) === undefined) {
    problems.push(`schema: ${where} has a default that is not a valid ${arg.type}`);
  }
};
for (const type of Object.values(schema.getTypeMap())) {
  if (type.name.startsWith("__")) continue;
  if (isInputObjectType(type)) {
    for (const f of Object.values(type.getFields())) checkDefault(`${type.name}.${f.name}`, f);
  }
  if (isObjectType(type) || isInterfaceType(type)) {
    for (const f of Object.values(type.getFields())) {
      for (const a of f.args) checkDefault(`${type.name}.${f.name}(${a.name})`, a);
    }
  }
}

// 3. Every console example is a valid operation, and its variables coerce.
const examples = JSON.parse(readFileSync(examplesPath, "utf8"));
if (!Array.isArray(examples) || examples.length === 0) problems.push("examples: none found");
for (const ex of examples) {
  let doc;
  try {
    doc = parse(ex.query);
  } catch (e) {
    problems.push(`example "${ex.name}": does not parse: ${e.message}`);
    continue;
  }
  for (const e of validate(schema, doc)) problems.push(`example "${ex.name}": ${e.message}`);
  for (const op of doc.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION)) {
    const { errors } = getVariableValues(schema, op.variableDefinitions || [], ex.variables || {});
    for (const e of errors || []) problems.push(`example "${ex.name}": variables: ${e.message}`);
  }
}

if (problems.length) {
  for (const p of problems) console.log(p);
  process.exit(1);
}
const types = Object.keys(schema.getTypeMap()).filter((n) => !n.startsWith("__")).length;
console.log(`ok: schema with ${types} types; ${examples.length} console examples valid`);
