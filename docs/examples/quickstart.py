"""docs/quickstart.md, as one script: a first execution, a plot, an error, the agent tool."""

from sandbox_tool import ExecutionError, PythonSandbox
from sandbox_tool.tool import OpenAIFunctions, PythonTool

sandbox = PythonSandbox()  # the strongest engine this machine offers

# 1. A first execution: the last expression (or `result`) comes back as JSON.
res = sandbox.execute_sync("import statistics\nstatistics.mean(inputs)", inputs=[3, 4, 8])
print("result:", res.result, "| engine:", sandbox.engine.name)

# 2. A plot: every open matplotlib figure comes back as a PNG artifact.
res = sandbox.execute_sync("import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])")
print("artifacts:", [(a.name, a.mime_type) for a in res.artifacts])

# 3. An error: a SandboxError with the exception, the line, and what was printed before.
try:
    sandbox.execute_sync("print('loading')\ntotal = 1 / 0")
except ExecutionError as err:
    print("error:", err.exception, "at line", err.lineno, "| printed:", err.stdout.strip())

# 4. The agent tool: its description for the model, and the message a call gets back.
tool = PythonTool(sandbox)
print(OpenAIFunctions(tool).chat_completions_tools()[0]["function"]["name"])
print(tool.run_sync("values = [1, 2, 3]\nsum(valeus)").text)
tool.close()  # stops the sandbox (its warm pool)
