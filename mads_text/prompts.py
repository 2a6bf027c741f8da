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

USER_TRANSCRIPT_HEADER = """The following is the transcript of a {medium} between {agent_name} ({company}) and {user_name}. {agent_name} called {user_name} to sell something; {user_name} did not ask for this {medium}.

About {user_name}:
{profile_prose}
{personality_prose}{stance_block}
{user_name} answers in one or two short, casual, spoken sentences, like a real person in a {medium}, reacts to what {agent_name} actually says, and mentions details of their own life only when they come up, one at a time. {user_name} is the customer, never the seller: {user_name} does not explain the product or quote its terms. {user_name} brings up the objections above when they fit, does not agree to pay more than they can afford, and does not have to be polite or agree. Asking questions or saying it sounds good is not accepting: only a concrete commitment counts ({acceptance_criteria}), and then {user_name} ends the line with [ACCEPT]. Once {user_name} has decided against it or heard enough, {user_name} says so plainly, says goodbye and ends the line with [WITHDRAW].

Transcript:
"""

# The customer's inner stance (mads_text.stance) as private notes in the transcript header.
STANCE_BLOCK = """
Where {user_name} stands before the call (private notes: they shape what {user_name} says, {user_name} never reads them out):
{stance}
"""

AGENT_TRANSCRIPT_HEADER = """The following is the transcript of a {medium}. {agent_name} ({company}) calls {user_name}, who did not ask for the {medium}, to sell a product.

Product facts {agent_name} can use:
{product_metadata}

{agent_name}'s task: {prompt_k}

{user_name} has not heard of the product before. {agent_name} opens by greeting {user_name} by name and saying who they are and why they are calling, then leads the conversation: introduces the product, asks about {user_name}'s situation, answers questions only with the facts above, handles objections, and asks for a decision. What counts as the customer saying yes: {acceptance_criteria}; when {user_name} sounds interested, {agent_name} proposes exactly that next step and asks for it directly (for example a day and time). {agent_name} speaks in one to three short, natural sentences per turn.

Transcript:
"""


def indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line.strip() else line for line in text.strip().splitlines())
