"""The tool in LangChain's prebuilt agent (``pip install langchain langchain-openai``).

Run: OPENAI_API_KEY=... python docs/examples/langchain_agent.py   (or OPENAI_BASE_URL)
"""

import os

from langchain.agents import create_agent
from langchain_openai import ChatOpenAI

from sandbox_tool import PythonSandbox
from sandbox_tool.tool import LangChainPythonTool, PythonTool

model = ChatOpenAI(
    model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
    base_url=os.environ.get("OPENAI_BASE_URL"),
    use_responses_api=True,  # the Responses API takes plots inside tool results
)
tool = LangChainPythonTool.from_tool(PythonTool(PythonSandbox()), model=model)
print("plots go:", tool.images)  # "tool_message" here; "none" on Chat Completions
agent = create_agent(model, tools=[tool])
state = agent.invoke({"messages": [("user", "Plot y = x**2 for x in 0..10 and give y(7).")]})
print(state["messages"][-1].text)
tool.close()
