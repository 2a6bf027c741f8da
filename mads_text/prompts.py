"""Prompt templates of the MADS paper (Appendix A.4) and the transcript-mode framing.

The paper's User Agent and Dialog Agent templates are kept verbatim (line wraps
of the typeset paper joined). One addition is needed: the paper's example calls
end with ``[ACCEPT]``/``[WITHDRAW]`` but its template never asks for them, so
the end-marker rule is appended to the User Agent's task notes as item 3.
"""

from __future__ import annotations

USER_AGENT_TEMPLATE = """<user_profile>
  <basic_info>
    {user_profile}
    {business_attributes}
  </basic_info>
  <personality>
    Based on the commonly accepted and general {personality_traits} personality traits, please characterize this person's personality and reflect it in the dialogue.
  </personality>
</user_profile>
<task>
  Based on the above personal profile, please role-play as this person.
  Note:
  1.Make your replies as conversational and colloquial as possible.
  2.Only output the dialogue. Do not output any thoughts, inner monologue, or any unnecessary content.
{end_rule}</task>
Start the task!"""

# The base group has no personality signifier; its profile omits the block.
PERSONALITY_BLOCK = """  <personality>
    Based on the commonly accepted and general {personality_traits} personality traits, please characterize this person's personality and reflect it in the dialogue.
  </personality>
"""

END_RULE = (
    "  3.You are in a {medium} with {agent_name}. When you decide to accept ({acceptance_criteria}), end your reply with "
    "[ACCEPT]. When you want to end the call without accepting, end your reply with [WITHDRAW].\n"
)

DIALOG_AGENT_TEMPLATE = """<reference_information>
Product metadata
  {product_metadata}
</reference_information>
<task>
  {prompt_k}
</task>
Start the task!"""

# Chat mode needs a first user message for the agent's opening line.
CALL_CONNECTED = "(The call has connected. Greet the customer and open the conversation.)"

# --- transcript mode ---------------------------------------------------------
# Small models keep their roles only when they continue a transcript: a prose
# header, then "Name: utterance" lines, ending with the next speaker's name.

USER_TRANSCRIPT_HEADER = """The following is the transcript of a {medium} between {agent_name} ({company}) and {user_name}.

About {user_name}:
{profile_prose}
{personality_prose}{user_name} did not expect this {medium} and has their own life, budget and doubts; {user_name} answers in one or two short, casual, spoken sentences, like a real person in a {medium}, reacts to what {agent_name} actually says, asks what they want to know, and does not have to be polite or agree. Only a concrete commitment counts as accepting ({acceptance_criteria}); being willing to listen or asking questions is not. When {user_name} decides to accept, {user_name} ends the line with [ACCEPT]. When {user_name} wants to end the {medium} without accepting, {user_name} ends the line with [WITHDRAW].

Transcript:
"""

AGENT_TRANSCRIPT_HEADER = """The following is the transcript of a {medium}. {agent_name} ({company}) talks with {user_name}.

Product facts {agent_name} can use:
{product_metadata}

{agent_name}'s task: {prompt_k}

{user_name} has not heard of the product before. {agent_name} leads the conversation: introduces the product, asks about {user_name}'s situation, answers questions only with the facts above, handles objections, and asks for a decision or a concrete next step. {agent_name} speaks in one to three short, natural sentences per turn.

Transcript:
"""


def indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line.strip() else line for line in text.strip().splitlines())
