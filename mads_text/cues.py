"""Decision cues in a customer's turn, read clause by clause (English).

A cue is the customer's own words: ``commit`` (I'll take it, send me the link, book me for Saturday at
ten), ``agree`` (a plain yes to the agent's concrete proposal: "Shall I send you the link?" - "Yes,
please"), ``defer`` (I'll think about it, call me next week), ``refuse`` (not interested, no thanks) and
``end`` (goodbye). A commitment that is negated ("I don't want to sign up"), hedged ("if it were cheaper
I'd take it", "maybe I'll apply") or asked about ("can I apply online?") is no commitment. Each cue holds
the clause it was found in, so evidence is always a verbatim piece of what the customer said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import cue_steps
from .cue_money import SOFT_NO
from .cue_steps import ACCEPT_OBJECT, CONFIRMS, EITHER_OR, HELP_OFFER, NO_TO_IT, PROPOSAL, SELF, SELLER_ACT, WH_QUESTION
from .cue_times import (
    _DAYS,
    _WHEN,
    ASKS_TIME,
    BOOKING,
    HOME_OR_CONTACT,
    SLOT_ASKED,
    TEST_DRIVE_WISH,
    TIME_ASKED,
    TIME_ONLY,
    WHEN,
    WISH,
    _rx,
)

# words that may stand between "I'll" and the act: "I'll definitely take it", "I'm ready to go ahead and apply"
_ADV = r"(?:definitely|certainly|gladly|happily|really|just|now|then|also|go ahead and|need to|have to)"
# "I'm happy to go ahead", "I'll be glad to buy it", "I agree to pay 622 RMB a month"; "I'm willing to try it" is no yes
_EAGER = r"i'?m (?:happy|glad|pleased) to|i'?ll be (?:happy|glad|pleased) to|i agree to|i(?:'ll| will) agree to"
# "I'll take that into account" takes nothing
_NOT_TAKE = r"(?! into\b| as\b| seriously| under\b| to heart)"
# words that turn a refusal into a postponement: "I can't buy it right now", "I can't agree to it at this time"
_LATER = r"(?:(?:right )?now|yet|today|for now|at the moment|at (?:this|the present))"


# "I want to buy a new car" states a need, not a commitment to this one
_NEED = r"(?! (?:a|an) (?:new|used|second-hand|cheaper|different|bigger|smaller|car|house|home|flat)\b| something)"
_ACTS = (r"buy{need}|purchase{need}|make (?:the|a|my|this) (?:purchase|order)|say yes|apply|sign up|signup|subscribe|book|register|enrol|enroll|go ahead|proceed|go for it|"
        r"donate|contribute|pledge|give (?:you |them )?(?:\$?\d|a dollar|one|two|half|fifty|the full|money|a donation)|"
        r"take (?:it|this|that|one|the (?!time\b|risks?\b|chance\b)\w+(?: \w+)?|out the \w+){not_take}|"
        r"accept (?:the|this|your) (?:\w+ )?(?:offer|plan|policy|proposal)|get (?:it|this|that|one|the (?!money|refund|details|information|info|guarantee)\w+(?: \w+)?)(?! back)|go with (?:it|the \w+(?: \w+)?)|"
        r"start the (?:application|process|assessment|questionnaire)|do the (?:risk )?(?:assessment|questionnaire)|"
        r"fill (?:in|out) the (?:application|form|questionnaire)|complete the (?:risk )?(?:application|form|assessment|questionnaire)|"
        r"schedule (?:it|one|a|the)|get (?:to|on) it\b|come (?:in|by|over)|come(?=\W*$)|test[- ]drive (?:it|one|the|this|that|your)|do it\b(?! later| myself| on my own| by myself)(?![^.?!]*\binstead\b)")
# the acts a commitment names; a refusal may name a need ("I don't want to buy a car")
_ACT = _ACTS.format(need=_NEED, not_take=_NOT_TAKE)
_ACT_ANY = _ACTS.format(need="", not_take=_NOT_TAKE)
COMMIT = _rx(
    r"\bsign me up\b", r"\bcount me in\b", r"\bi(?:'?d| would)? (?:like|want|love) a test[- ]drive\b", r"\bi'?ll say yes\b", r"\bi say yes\b", r"\bwhere do i sign\b", r"\bput me down (?:for|on)\b",
    rf"\b(?:i'?ll|i will)(?: {_ADV})* take (?:it|one|that|this|the (?!time\b)[\w-]+(?: [\w-]+)?)\b{_NOT_TAKE}",
    r"\blet'?s (?:do it|do that|do this|go ahead|go with|proceed|book|schedule|set (?:it|that|one) up|sign)\b",
    r"\bgo ahead (?:and|with) (?:send|book|sign|set|schedule|register|apply|enrol|subscribe|start|process|reserve)",
    rf"\b(?:i'?ll|i will|i want to|i'?d like to|i would like to|i'?m ready to|i am ready to|i'?m going to|i'd love to|i can|{_EAGER})"
    rf"(?: {_ADV})* (?:{_ACT})\b",
    # paying or investing is a commitment only from someone saying they will, not "I can pay 200 a month"
    rf"\b(?:i'?ll|i will|i want to|i'?d like to|i would like to|i'?m ready to|i am ready to|i'?m going to|{_EAGER})(?: {_ADV})* "
    r"(?:invest (?:in (?:it|this|that|the \w+)|[\d,]+|the)|pay (?:(?:this|that) amount|the (?:(?:monthly|annual|yearly|first|full) )?(?:premium|deposit|first|fee|price|amount)|"
    r"it\b|for it)|(?:pay|invest)(?=\W*$))",
    r"\b(?:send|text|email|message) (?:me |over )?(?:the |that |your |a )?(?:application |sign-?up |registration |payment |purchase )?link\b",
    # an order to book, at the head of a clause ("Book me for Saturday", "Okay, please reserve a slot"); "I need to
    # book a test drive within three months" states a need and is no commitment
    r"^\W*(?:(?:yes|yeah|ok|okay|sure|alright|great|then|so|please|just|go ahead and|i'?m ready|i am ready)\W+)*"
    r"(?:(?:book|schedule|reserve) (?:me|it|a (?:slot|time|test drive|drive|visit|appointment)|the (?:test drive|appointment|drive|visit))|"
    r"(?:do|start) the (?:risk )?(?:assessment|questionnaire|application))\b",
    r"\b(?:it'?s|that'?s) a deal\b", r"^\W*deal\b", r"^\W*(?:yes|yeah)\W+i (?:really )?want (?:it|this one|that one)\W*$",
    r"\bi accept\b(?! that)", r"\b(?:i'?m|i am) ready to accept\b(?! (?:that|the fact|it if))", r"\bi agree to (?:subscribe|buy|purchase|apply|sign|book|register|pay (?:you |for )?(?:it|this|the)|it\b|this\b|the (?:offer|terms|plan|policy))",
    r"\bmy (?:phone )?(?:number|email|contact)(?: details)? is\b", r"\byou can (?:reach|call|contact|text) me (?:at|on)\b",
    r"\b(?:i'?ll|i will|i can|let me) (?:provide|give|send)(?: you)? my (?:phone )?(?:number|email(?: address)?|contact(?: details)?)\b",
    rf"\b(?:{_DAYS}|tomorrow|tonight|this evening)\b[^.?!]{{0,40}}"
    r"\b(?:works|is fine|is good|suits me|sounds good|is perfect|it is)\b",
    rf"\bsee you (?:on|at|then|tomorrow|{_DAYS})\b",
    # availability at a named time answers "when can we meet?" ("I'm available tomorrow at 10 AM")
    rf"\bi'?m (?:available|free)\b[^.?!]{{0,25}}{_WHEN}",
    # content with a named option of the offer ("I'm okay with the 178 RMB starter plan, I'll start right away")
    r"\bi'?m (?:okay|ok|fine|happy|good) with (?:the|that|this) (?:[\w,]+ ){0,4}(?:plan|policy|option|trim|offer|appointment|"
    r"slot|time|test[- ]drive|visit|booking)\b(?! i (?:have|already|got))",
    r"\b(?:i'?ll|i will|i can|i'?m ready to|i am ready to) start (?:it |the application )?(?:right away|right now|now|today)\b",
    r"\blet me (?:get|do|start|fill (?:in|out)|complete) (?:it|that|this|the \w+)\b[^.?!]{0,20}\b(?:right away|right now|now|today)\b",
    # a second act joined to a first ("I'll get the money and subscribe to the product"), not after thinking it over
    rf"\b(?:i'?ll|i will)(?: {_ADV})* (?!think|talk|discuss|consider|ask|check|see|look|wait|sleep)\w+ (?:[\w,']+ ){{0,4}}and (?:then )?"
    rf"(?:{_ACT})\b(?![^.?!]*\b(?:if|unless)\b)",
    # trying it at a named time is booking it ("Okay, I'll try it at 3 PM tomorrow."); "I'll try." alone is not
    rf"\b(?:i'?ll|i will|i can)(?: {_ADV})* (?:try|do) (?:it|that|this|the test[- ]drive)\b[^.?!]{{0,20}}{_WHEN}",
    rf"\b(?:i'?ll|i will|i can|i'?m going to)(?: {_ADV})* (?:come|go|be) (?:to|at) (?:the|your) (?:showroom|branch|store|office|"
    rf"dealership)\b[^.?!]{{0,40}}{_WHEN}",
    r"\b(?:you can|i can have you|have you|i'?d like you to|please) come (?:to|over to) my (?:home|house|place)\b",
    r"\b(?:do|have|take) (?:the |a )?test[- ]drive at (?:my )?(?:home|house|place)\b",
    # naming the time sets the booking up ("Okay. Let's set it for next Thursday at 7 PM.")
    rf"\blet'?s (?:set|make|do|say|book|schedule) (?:it |that |one )?(?:for |on |at )?(?:next |this )?{_WHEN}",
)
# paying an amount: "I'm ready to pay 10,000 RMB" commits, "I want to pay 536 RMB a month" counter-offers, and so does
# "I will pay 131,650 RMB. Can you give me a discount?" (read_cues drops it when the turn bargains)
AMOUNT = _rx(rf"\b(?:i'?ll|i will|i'?m ready to|i am ready to|i'?m going to|{_EAGER})(?: {_ADV})* pay (?:the )?[\d,]+")
BARGAIN = _rx(r"\bdiscount\b", r"\bcheaper\b", r"\blower (?:the )?(?:price|premium)\b", r"\bbetter (?:price|deal|offer)\b")
# "I'm fine keeping savings where they are": what one has, preferred to the offer
FINE_KEEPING = r"\bi'?m (?:fine|happy|good|ok(?:ay)?) (?:keeping|leaving|with) (?:my |the |our )?(?:savings|money|deposits?|current \w+)\b"
# "I don't think I need this" is a first reaction when it is the customer's first turn (``decision.last_cues``)
NO_NEED = _rx(r"\bi (?:don'?t|do not)(?: think i)? need\b", FINE_KEEPING)
# a link asked for is a link agreed to, even phrased as a question; so is a home test drive asked for, and asking,
# please, to buy it now
LINK_REQUEST = _rx(r"\b(?:(?:can|could|would|will) you|you can|you could) (?:please )?(?:arrange|book|schedule|set up|organi[sz]e|bring|do) (?:me )?"
                   r"(?:a |the )?(?:home test[- ]drive|test[- ]drive (?:for me )?at (?:my )?(?:home|house|place|office))\b",
                   r"\b(?:can|could|may) i please (?:buy|purchase|apply for|subscribe to|sign up for|get) (?:it|this|that|the)\b"
                   r"[^.?!]{0,60}\b(?:now|today|right away)\W*$",
                   r"\b(?:i'?d like|i would like|i want|i need|i'?m ready|i am ready|i'?ll|i will)(?: to)?(?: (?:see|get|have|receive))? (?:the |a |an |your )?"
                   r"(?:\w+ )?(?:application |sign-?up |registration |payment )?link\b",
                   r"\b(?:can|could|would|will) you (?:please )?(?:send|text|email|give) me (?:the |that |your |a |an )?"
                   r"(?:application |sign-?up |registration |payment )?link\b",
                   r"\b(?:can|could|may) i (?:get|have) (?:the |that |your |a |an )?(?:application |sign-?up |registration |"
                   r"payment )?link\b")
YES = re.compile(r"^\W*(?:(?:um+|uh+|oh|well|hmm+|ah)\W+)?(?:yes|yeah|yep|yup|sure|okay|ok|alright|all right|of course|"
                 r"absolutely|definitely|certainly|please do|go ahead|(?:(?:it|that|this) )?sounds good|that works|that'?s fine|fine|why not|"
                 r"let'?s do it|let'?s get started|perfect|great|no problem|(?:i have )?no objections?|i (?:don'?t|do not) have any objections?|"
                 r"i agree(?! with| that| to)|i'?m (?:all )?ready(?: to go)?(?=\W*$)|i(?:'ll| will) be there(?=\W*$))\b", re.IGNORECASE)
NO = re.compile(r"^\W*(?:no(?!\W+(?:problem|worries)\b)|nope|nah|not really|i (?:don'?t|do not) want\b(?! to (?:wait|miss|lose|waste))|i'?d rather not)\b",
                re.IGNORECASE)
DEFER = _rx(
    r"\bthink (?:about|it over|on|this over|that over)\b", r"\bsleep on it\b", r"\bmull it over\b",
    r"\bgive it (?:some )?(?:thought|a thought)\b",
    r"\b(?:talk|speak|discuss|check|consult)(?: it| this| that)?(?: over)? (?:with|to) (?:my|our) \w+",
    r"\bask (?:my|our) (?:wife|husband|spouse|partner|family|kids|son|daughter|parents|boss|accountant)\b",
    r"\b(?:call|ring|contact|phone) me (?:back|later|another time|next|tomorrow|some other time|in a)\b",
    r"\bget back to you\b", r"\blet you know\b", r"\bi'?ll (?:call|ring|phone|contact) you(?: back)?\b", r"\bnot (?:right )?now\b", r"\bnot today\b",
    r"\bmaybe (?:later|next|some other time|another time|some day|one day)\b", r"\bsome other time\b",
    r"\b(?:need|want) (?:some |more )?time\b", r"\bnot ready\b",
    r"\b(?:send|email|mail|text|give) me (?:some |more |the |a |your )?(?:information|info|details|brochure|materials?|"
    r"documents?|paperwork|terms|quote)\b",
    r"\bi'?ll (?:consider|look into|look it up|check it out|check online|read up|do some research|research)\b", r"\breconsider\b",
    r"\b(?:can'?t|cannot|won'?t|not)\b[^.?!]{0,30}\b(?:right now|at the moment|at (?:this|the present) time|for now|yet)\b",
    r"\blet me (?:think|check|consider|look|see|sleep)\b", r"\bi'?m not sure\b", r"\bnot sure (?:yet|about)\b",
    # "I need to talk it over with you" talks to the caller, now
    r"\b(?:have|need) to (?:think|check|discuss|talk|consult)\b(?!(?: (?:it|this|that|about it|about this|about that))?(?: over)? (?:with|to) you\b)",
)
REFUSE = _rx(
    r"(?<!\byou're )(?<!\byou are )(?<!\bthey're )not interested\b", r"\bno,? thanks?\b", r"\bi'?m withdrawing\W*$", r"\bno,? thank you\b", r"\bi'?ll pass\b",
    r"\bpass on (?:it|this|that)\b",
    # "I don't need a new car right now" is not now, not no
    r"\b(?:i|we) (?:still |really |just )?(?:don'?t|do not) (?:want|need) (?:it|this|that(?! money| much| kind| long)|any|one|another(?: \w+)?|insurance|a car|"
    rf"a new (?:one|car|policy|product|plan)|an? (?:test[- ]drive|policy|plan|product|appointment|link)|the \w+|this \w+|"
    rf"your \w+)\b(?![^.?!]*\b{_LATER}\b)",
    # looking for something cheaper is leaving this offer ("I need to find a cheaper option"); asking for one is not
    r"\bi (?:need|have|'?m going|am going|will have|'?ll have) to (?:find|look for|go for|get) (?:a |an |something )?(?:cheaper|less expensive)\b",
    r"\b(?:stop|quit) calling\b", r"\b(?:don'?t|do not|never) call (?:me|here|again)\b", r"\bremove (?:me|my number)\b",
    r"\btake me off\b", r"\bleave me alone\b", r"\bwaste of (?:my )?time\b",
    r"\bi'?m not (?:buying|going to (?:buy|sign|do|take|apply|book)|signing|doing (?:it|this|that)|taking (?:it|this))\b",
    r"\bi (?:won'?t|will not) (?:buy|sign|do|take|apply|book|commit|be buying)\b",
    r"\bi'?m not planning (?:on|to) (?:buy(?:ing)?|get(?:ting)?|purchas(?:e|ing)|chang(?:e|ing))\b[^.?!]{0,25}\bthis year\b",
    r"\bi(?:'?ve| have)? decided (?:not to|against)\b", r"\bi(?:'?ve| have) given up on (?:it|this|that|the (?:idea|offer|car|plan|product))\b", r"\bi'?ll have to (?:decline|say no|pass)\b",
    r"\bi (?:decline|refuse)\b", r"\bi(?: think i)?'?ll decline\b", r"\bi (?:can'?t|cannot) agree\W*$",
    # "I'm sorry, but I can't make it." to the test drive; "I can't make it at 3, how about 4?" moves the time
    r"\bi (?:can'?t|cannot|won'?t be able to) make it\b(?![^.?!]*\b(?:at|on|by|then|tomorrow|today|tonight|this(?! time)|next|that day|"
    r"before|until|(?<!this )time|how about|what about)\b)(?!\W*(?:how|what) about\b)", r"\bi (?:really |just |simply )?(?:can'?t|cannot) do (?:it|this|that)(?=\W*$|,)", r"\bno way i (?:can|could|will|'?ll) (?:do|afford|buy|take|sign|subscribe|pay)\b", r"(?<!\bif i )(?<!\bif we )(?<!\bwhen i )\b(?:need|have|want|going) to (?:decline|refuse|turn down|withdraw\b(?! (?:my|the|some|money|it|cash|funds|from)))(?![^.?!]*\b(?:if|unless)\b)",
    r"\b(?:decline|turn down|refuse) (?:the|your|this|that) (?:offer|proposal|product|plan)\b", r"\bno deal\b", r"\bnot going to happen\b", r"\bforget (?:it|about it)\b",
    r"\bi'?ll (?:look|shop) (?:elsewhere|somewhere else|around)\b", r"\bi'?ll (?:look at|go for|try|check) (?:the next|another|other|a different) (?:option|product|offer|bank)s?\b",
    r"\b(?:find|get|buy) (?:a|an|one|another|something)\b[^.?!]{0,30}\b(?:elsewhere|somewhere else)\b",
    r"\b(?:stay|keep) away from (?:it|this|that)\b", r"\bi'?m (?:going to|gonna) stay away\b",
    r"\b(?:can'?t|cannot|won'?t|will not) accept (?:your|the|this|that) (?:offer|proposal|invitation)\b",
    r"\bi (?:can'?t|cannot|won'?t|will not|(?:don'?t|do not) want to) accept(?: (?:it|this|that))?(?=\W*$|[,;])",
    r"\bi (?:don'?t|do not) think i (?:can|will|want to) (?:do|take|buy|get|go ahead with) (?:this|it|that)\b",
    # "I can't agree to it at this time" postpones
    r"\bi (?:can'?t|cannot) (?:book|buy|accept|agree to|commit to|sign up for|take|go ahead with) (?:it|this|that|a|the|your|anything)\b"
    rf"(?![^.?!]*\b{_LATER}\b)",
    r"\bi'?ll (?:look for|find|go with|buy|get|stick with|keep) (?:a different|another|something else|a cheaper|my (?:own|current))\b",
    # turning to another product: "I'll look for a product that offers a higher return"
    r"\bi'?ll (?:look for|search for|try to find|shop for) (?:a|an|another|some) (?:\w+ )?(?:product|plan|policy|car|option|deal)s? (?:that|with|which|elsewhere)\b",
    r"\b(?:not|isn'?t) (?:suitable|right|a (?:good )?fit) for me\b", r"\bdoesn'?t (?:fit|suit|meet) my needs\b",
    r"\b(?:don'?t|do not) think (?:this|it|that)(?: \w+){0,3} (?:is suitable|suits me|fits|is right for me|is for me)\b",
    r"\b(?:don'?t|do not) think (?:this|it|that)(?:'s| is) (?:a )?(?:good|right|suitable) (?:\w+ )?for me\b",
    r"\bbetter not (?:to )?(?:take|buy|do|sign|risk|invest|go)\b", rf"\bi(?:'?m| am) not in a position to (?:buy|purchase|take|sign|subscribe|apply)\b(?![^.?!]*\b{_LATER}\b)",
    # "I don't want to invest in anything that could lose me money" is a condition, not a no to this product
    r"\bi (?:don'?t|do not)(?: really| actually)? want to (?:invest|put (?:my |any )?money) in (?:it|this|that|the \w+|your \w+)\b",
    r"\bi (?:don'?t|do not) think (?:i|we) (?:need|want) (?:it|this|that|one|another|the \w+|a \w+|any)\b",
)
# "not for me" refuses the offer, unless the turn prefers another version of it ("The Comfort trim is not for me. I'm more
# interested in the Premium trim")
NOT_FOR_ME = _rx(r"\bnot for me\b")
PREFERS = _rx(r"\bmore interested in\b", r"\bi (?:'?d )?prefer\b", r"\bi'?d rather have\b", r"\b(?:the|a) \w+ (?:trim|plan|version|model) instead\b")

# the mirror of a commitment: "I can't subscribe to it", "I won't buy this"; "I can't buy it right now" postpones and
# "I don't want to buy it if I can't afford it" is a condition
NEG_COMMIT = re.compile(
    rf"\bi (?:also |just |really |still )?(?:can'?t|cannot|won'?t|will not|don'?t|do not|never|(?:don'?t|do not)(?: really| actually)? want to|'?m not going to|"
    rf"am not going to|(?:don'?t|do not|can'?t|won'?t) agree to)"
    rf"(?: {_ADV})* "
    rf"(?:{_ACT_ANY})\b(?![^.?!]*\b(?:if|unless|{_LATER})\b)(?!(?<=do it) (?:in|at|there|here)\b)",  # "I can't do it in the city": charging
    re.IGNORECASE)
# keeping what one has instead of the offer ("I'll keep a time deposit instead"); found with the hedge guard, so "If the
# return isn't guaranteed, I'd rather keep a time deposit" stays an objection
ALTERNATIVE = _rx(FINE_KEEPING, r"\bi (?:don'?t|do not) (?:want|need) to change\W*$", r"\bi'?ll (?:go|stick|stay) with (?!it\b|this\b|that\b)[^.?!]{0,40}\b(?:first|instead)\b",
                  r"\b(?:i'?ll|i will|i'?d rather|i would rather|i prefer to|i'?m going to)(?: just)? (?:keep|stick with|stay with)"
                  r"\b[^.?!]{0,40}\binstead\b", r"\bi'?ll (?:just )?(?:keep|stick with|stay with) (?:my|the one i|what i)\b",
                  r"\b(?:i'?d rather|i would rather|i prefer to|(?<!otherwise, )(?:i'?ll|i will))(?: just)? (?:keep|stay with|stick (?:with|to)) (?:a|my|the) (?:time )?deposits?\W*$",
                  # "I want to stick to the petrol car I've been driving"
                  r"\b(?:i'?ll|i will|i want to|i'?d like to|i would like to|i'?m going to|i am going to|i plan to|i prefer to)(?: just)? "
                  r"(?:stick|stay) (?:to|with) (?:my|our|the (?:\w+ ){0,2}(?:car|suv|vehicle|one|policy|plan|deposits?) (?:i|we)(?:'ve| have| already))\b",
                  r"\b(?:i'?ll|i will|i want to|i'?d rather|i would rather|i prefer to)(?: just)? (?:stick|stay) with what i (?:know|have)\b", r"\bnot my thing\b",
                  r"\b(?:i'?ll|i'?d rather|i prefer to|i'?m going to)(?: just)? (?:keep|leave) (?:it|my money|the money|my savings)"
                  r" (?:in|at|with) (?:the |my |a )?(?:time deposit|deposits?|bank|savings|current account|account)\b")
# a request for information keeps a repeated price objection a negotiation ("I need to know what cover I can get")
REQUEST = _rx(r"\b(?:need|want|would like|'d like) to (?:know|understand|see|hear)\b", r"\btell me\b", r"\bexplain\b",
              r"\bwondering (?:whether|if|about)\b", r"\b(?:need|want|would like|'d like) to talk (?:to|with) you\b",
              r"\bneed (?:your |some )?help\b", r"\bbut i(?: still)?(?: want| would like|'d like| need| like)\b",
              r"\bis there (?:a|any)\b", r"\bdo you have\b", r"\b(?:what|which) (?:kind|sort|type|options?|other)\b",
              r"\b(?:a )?cheaper\b", r"\b(?:lower|smaller|less expensive)\b")
# a refusal that only says the offer is not needed
NEED_ONLY = re.compile(r"\b(?:don'?t|do not)(?: think (?:i|we))? need\b", re.IGNORECASE)
BYE = _rx(r"\b(?:good ?bye|bye|bye-bye)\b")
END = _rx(
    BYE.pattern, r"\bhave a (?:good|nice|great|lovely) (?:day|one|evening|afternoon|night)\b",
    r"\bhang(?:ing)? up\b", r"\bi (?:have|need|got) to go\b(?! ahead| on\b| through| over| with| for| and| to)", r"\bgotta go\b", r"\btalk (?:to you )?(?:later|soon)\b",
    r"\btake care\b(?! of)", r"\bend (?:the|this|our) (?:call|conversation)\b", r"\bi'?m (?:going to|gonna) hang up\b",
    r"\b(?:can'?t|won'?t) (?:talk|do this|take (?:it|this)|handle (?:it|this))\b[^.?!]{0,25}\bany ?more\b",
    r"^\W*i'?m done\b(?! with (?:my|the) )", r"\b(?:can'?t|won'?t) (?:continue|go on)(?: with)? (?:this|the|our) (?:call|conversation)\b",
    r"\bi'?m (?:really |so |getting )?(?:tired|sick) of (?:this|it|all this|you|the call|these calls)\b", r"\bi'?m done with (?:the|this|our) (?:call|conversation|talk)\b",
    r"\b(?:can'?t|don'?t have time to) (?:talk|speak)(?: to you| with you)?(?: right)? (?:now|at (?:this|the) (?:time|moment))\b", r"\bi (?:want|need|have) to (?:leave|go now)\b", r"\bi'?m not (?:available|free) to (?:talk|speak)\b",
    r"\bi (?:want|need|have) to (?:quit|stop)(?: (?:this|here|now|the call))?\W*$",
)
# an act put off to an unnamed later time is a postponement: "I'll complete the questionnaire later / at the next meeting"
LATER = _rx(r"\b(?:later|another time|some other time|some ?day|one day)\b",
            r"\b(?:next|another) (?:time|meeting|call|week|month|year)\b", r"\bin the (?:next|coming) (?:few )?(?:days|weeks|months|meeting)\b")
NOW = _rx(r"\b(?:right )?now\b(?! or)", r"\bright away\b", r"\bimmediately\b")
# "Thank you for your time." closes a call unless a question follows in the same turn (read_cues)
THANKS_CLOSE = _rx(r"\bthanks?(?: you)?(?: so much| very much)? for your time\b")
NEGATION = re.compile(r"\b(?:not|don'?t|do not|doesn'?t|never|won'?t|can'?t|cannot|wouldn'?t|isn'?t|no(?!\W+(?:problem|worries)\b)|nor|neither)\b"
                      r"(?:\W+\w+){0,3}\W*$", re.IGNORECASE)
HEDGE = re.compile(r"\b(?:if|unless|maybe|might|perhaps|probably|possibly|could|whether|when|once|before|after|"
                   r"until|only if|would have)\b", re.IGNORECASE)
BUT = re.compile(r"(?:but|though|although|however)\b", re.IGNORECASE)
# someone else's view: "I've been told that I can't buy it", "my son is not interested"
REPORTED = re.compile(r"\b(?:told|said|says|heard|read) (?:me )?that i\b|\b(?:my|our) (?:son|daughter|wife|husband|kids|children|"
                      r"family|parents|partner|spouse|boss)(?:'s| is| are| was| were) not\b", re.IGNORECASE)
CLAUSE = re.compile(r"(?<=[.!?;])\s+|\s*(?:,|--|—)\s*(?=but\b|though\b|although\b|however\b)", re.IGNORECASE)


def plain(text: str) -> str:
    """Typographic apostrophes as plain ones, so "can’t" reads as "can't"."""
    return text.replace("’", "'").replace("‘", "'")


# one spelling per contraction, so "I am not buying" and "I'm not buying" meet the same pattern; matched text only,
# evidence stays the customer's own clause
_CONTRACT = [(re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"\bcan ?not\b", "can't"), (r"\bwill not\b", "won't"), (r"\bdo not\b", "don't"),
    (r"\bi am\b", "I'm"), (r"\bi will\b", "I'll"), (r"\bi would\b", "I'd"))]


def canon(text: str) -> str:
    text = plain(text)
    for rx, rep in _CONTRACT:
        text = rx.sub(rep, text)
    return text


def clauses(text: str) -> list[str]:
    return [c.strip() for c in CLAUSE.split(plain(text)) if c and c.strip()]


def _find(rx: re.Pattern, parts: list[str], guard: bool) -> str | None:
    """The first clause where ``rx`` matches; with ``guard`` a negated, hedged or asked match does not count, nor
    one followed by "but" in the same clause ("I want to buy this car but I can't install a charger")."""
    for orig in parts:
        c = canon(orig)
        for m in rx.finditer(c):
            before = c[: m.start()]
            if guard and (NEGATION.search(before) or HEDGE.search(before) or c.rstrip().endswith("?")
                          or re.search(r"\bbut\b", c[m.end():], re.IGNORECASE)):
                continue
            return orig
    return None


CONDITION = re.compile(r"\b(?:if|unless|whether)\b[^.?!]{0,20}$", re.IGNORECASE)


def _unconditional(rx: re.Pattern, parts: list[str]) -> str | None:
    """The first clause where ``rx`` matches outside a condition: "If I can't afford it, I'll talk to my spouse" states
    no objection."""
    for orig in parts:
        c = canon(orig)
        m = rx.search(c)
        if m and not CONDITION.search(c[: m.start()]):
            return orig
    return None


@dataclass
class Cues:
    commit: str | None = None
    agree: str | None = None
    defer: str | None = None
    refuse: str | None = None
    end: str | None = None
    soft_no: str | None = None  # "I can't afford it": a no when the customer says it a second time
    asks: bool = False  # a request anywhere, or a question from the price objection on: still negotiating
    proposal: bool = False  # the agent's turn before made a concrete proposal

    def any(self) -> bool:
        return any((self.commit, self.agree, self.defer, self.refuse, self.end, self.soft_no))

    def blocks_accept(self) -> bool:
        return bool(self.defer or self.refuse)


def names_step(clause: str) -> bool:
    """A clause of the agent's that puts the accepting step: a proposal phrase naming its object, not a wh-question."""
    return bool(PROPOSAL.search(clause) and ACCEPT_OBJECT.search(clause)) and not WH_QUESTION.search(clause)


def asks_for_step(clause: str) -> bool:
    """``names_step``, and a yes can answer it: not a choice between ways of doing it ("Do you want to pay monthly or
    yearly?"), though a choice between now and later is a yes or no to now."""
    return names_step(clause) and not (EITHER_OR.search(clause) and not re.search(r"\bnow\b", clause, re.IGNORECASE))


def proposes(agent_turn: str) -> bool:
    """The agent's turn proposes a concrete accepting step (``asks_for_step``) with no other question after it, which
    a yes or no would answer instead ("We can start with the starter plan. Do you have any other questions?" - "No")."""
    parts = clauses(agent_turn or "")
    last = max((i for i, s in enumerate(parts) if asks_for_step(s)), default=None)
    return last is not None and not any(s.rstrip().endswith("?") and not (PROPOSAL.search(s) or CONFIRMS.search(s))
                                        for s in parts[last + 1:])


# "Can you confirm the test drive at the showroom?" to a slot the agent named asks for the booking
CONFIRM_SLOT = _rx(r"\b(?:can|could|would|will) you (?:please )?confirm (?:the|my|that|this) (?:test[- ]drive|booking|appointment|"
                   r"slot|time)\b")
# "Okay, I understand." acknowledges; it is no yes to a proposal
ACKNOWLEDGES = re.compile(r"\W*(?:ok(?:ay)?|alright|all right|yes|yeah)\W+i (?:understand|see|know)\W*", re.IGNORECASE)
CANCELS = _rx(r"\bcancel\b", r"\bstop (?:the|this|here)\b", r"\bend (?:the|this|our) call\b", r"\bcall it a day\b")
SAYS_YES = _rx(r"\bsay yes\b", r"^\W*(?:yes|yeah|ok|okay|sure)\W*$")


def bare_yes(customer: str) -> bool:
    """The turn is only a yes or an acknowledgement ("Ok.", "Okay, sure.", "Yes, please."): a commitment only as the
    answer to a concrete proposal of the agent (docs/labelling.md), which ``read_cues`` sees as ``agree``."""
    parts = clauses(customer)
    return bool(parts) and all(YES.search(c) and len(c.split()) <= 3 for c in parts)


def read_cues(customer: str, agent_before: str = "") -> Cues:
    parts = clauses(customer)
    cues = Cues(proposal=proposes(agent_before))
    cues.commit = _find(COMMIT, parts, guard=True) or _find(LINK_REQUEST, parts, guard=False)
    if not cues.commit and ASKS_TIME.search(agent_before or ""):
        cues.commit = _find(TIME_ONLY, parts, guard=True) or _find(TIME_ASKED, parts, guard=False)
    if not cues.commit:
        cues.commit = _find(SLOT_ASKED, parts, guard=False)
    if not cues.commit and cues.proposal and WHEN.search(agent_before or ""):
        cues.commit = _find(CONFIRM_SLOT, parts, guard=False)
    if not cues.commit and not BARGAIN.search(canon(customer)):
        cues.commit = _find(AMOUNT, parts, guard=True)
    cues.defer = _find(DEFER, parts, guard=False)
    # "I've been told that I can't buy it" reports a refusal, it does not make one
    said = [c for c in parts if not REPORTED.search(c)]
    cues.refuse = (_find(REFUSE, said, guard=False) or _find(NEG_COMMIT, said, guard=True) or _find(ALTERNATIVE, parts, guard=True)
                   or (None if PREFERS.search(canon(customer)) else _find(NOT_FOR_ME, said, guard=False)))
    # "I don't need another one. I just want to know if it will help me ..." still asks about the offer
    if cues.refuse and NEED_ONLY.search(cues.refuse) and any(REQUEST.search(canon(c)) for c in parts[parts.index(cues.refuse) + 1:]):
        cues.refuse = None
    if cues.refuse and cues.refuse == parts[0] and NO_TO_IT.fullmatch(canon(parts[0])) and HELP_OFFER.search(agent_before or ""):
        cues.refuse = None
    cues.end = _find(END, parts, guard=False)
    # "Bye. Thanks. I already have social medical insurance, isn't that enough?", "Bye, Li Wei. I'm Jing. I'm here to
    # talk about ...": still talking, with a question or two sentences more after it that take no leave
    after = [c for c in parts[parts.index(cues.end) + 1 :] if not END.search(c)] if cues.end else []
    if BYE.search(cues.end or "") and (any("?" in c for c in after) or len(after) >= 2):
        cues.end = None
    cues.soft_no = _unconditional(SOFT_NO, parts)
    # "Is that so? I can't afford to pay that much." asks for nothing: the question came before the objection
    after_no = parts[parts.index(cues.soft_no):] if cues.soft_no else parts
    cues.asks = bool(REQUEST.search(canon(customer))) or any("?" in c for c in after_no)
    if not cues.end and not cues.asks:
        cues.end = _find(THANKS_CLOSE, parts, guard=False)
    if cues.commit:
        i = parts.index(cues.commit)
        # "I'm ready to buy it. I can't put more than 75 RMB a month." names a price the offer does not meet;
        # "I'm ready to pay 10,000 RMB, but I also need to know how much it will grow" is not done yet
        if (cues.soft_no and parts.index(cues.soft_no) > i) or (i + 1 < len(parts) and BUT.match(parts[i + 1])):
            cues.commit = None
    # "I'm sorry, I'm not sure. Can you send me the application link?": a bare doubt before the request is no postponement
    if (cues.commit and cues.defer and parts.index(cues.defer) < parts.index(cues.commit)
            and re.fullmatch(r"\W*(?:(?:i'?m sorry|sorry|well|hmm|um)\W+)*i'?m (?:still )?not sure\W*", canon(cues.defer), re.I)):
        cues.defer = None
    # "I'll do it now and let you know later" does it now
    if cues.commit and LATER.search(canon(cues.commit)) and not NOW.search(canon(cues.commit)):
        cues.defer, cues.commit = cues.defer or cues.commit, None
    if cues.commit and BOOKING.search(cues.commit) and WISH.search(canon(cues.commit)):
        # "I want to test drive it" names the act, not a booking: only its own day or place makes it one ("at home on
        # September 14th at 2 PM"), not the agent's list of options
        own = TEST_DRIVE_WISH.search(canon(cues.commit))
        if not any(WHEN.search(canon(t)) or HOME_OR_CONTACT.search(t) for t in ((customer,) if own else (customer, agent_before))):
            cues.commit = None
    # "I will say yes." to "Can we cancel it for now?" says yes to stopping; "I will book you a ..." is the seller's line
    if cues.commit and ((CANCELS.search(agent_before or "") and SAYS_YES.search(canon(cues.commit))) or SELLER_ACT.search(cues.commit)):
        cues.commit = None
    # "Yes, I can say yes to that." to "Can you tell me what the running cost is?" says yes to nothing
    if cues.commit and re.search(r"\bsay yes to (?:that|this|it)\b", cues.commit, re.I) and not cues.proposal:
        cues.commit = None
    if cues.proposal and parts:
        first = parts[0]
        # "Yes, please." to "Shall I send the link?" is a commitment; "Yes, but how much?" is not
        hedged = len(parts) > 1 and BUT.match(parts[1])
        # nor "Okay, if I subscribe 10,000 today, I'll get ... which is almost nothing"
        hedged = hedged or bool(re.search(r"\b(?:if|unless|whether)\b", first, re.I))
        hedged = hedged or bool(ACKNOWLEDGES.fullmatch(first)) or bool(cue_steps.REDIRECT.search(first))
        # "Okay, I'll send you the link now." says the seller's line back
        hedged = hedged or bool(SELLER_ACT.search(customer)) or bool(cue_steps.STATES_FACT.match(first))
        # after "I'll send you the link now." (told, not asked) a "No" that speaks of the offer corrects a fact
        told = not any(asks_for_step(c) and c.rstrip().endswith("?") for c in clauses(agent_before))
        if YES.search(first) and not hedged and not re.search(r"\bbut\b", first, re.I) and not first.rstrip().endswith("?"):
            cues.agree = first
        elif (NO.search(first) and not cues.refuse and not cues.defer  # "No, I'll think about it." postpones
              and not any(re.search(r"\bbut i (?:think|want|would|'d|might|may)\b", c, re.I) for c in parts[1:])
              and not cue_steps.ASKS_INSTEAD.search(first)
              and not (told and len(first.split()) > 2 and not SELF.search(customer))):
            cues.refuse = first

    elif (parts and not cues.refuse and NO.search(parts[0]) and ASKS_TIME.search(agent_before or "")
          and any(names_step(c) for c in clauses(agent_before))
          and not WHEN.search(customer) and "?" not in customer
          and not re.search(r"\b(?:not sure|maybe|perhaps|think)\b", customer, re.IGNORECASE)):
        # "No, I don't want to go to the showroom or your home." to "Would you like to book a test drive ...? Which day
        # and time suit you?": the question for a time keeps a bare yes from committing, not a no from declining;
        # "No, Saturday doesn't work. How about Sunday?" moves the time
        cues.refuse = parts[0]
    return cues


# a doubt in the customer's words: a negation or a worry
CONCERN = _rx(r"\b(?:not|no|never|nothing|can't|don't|doesn't|won't|isn't|wouldn't|worried|worry|afraid|unsure|"
              r"expensive|too (?:much|long|high|risky)|scam|risk\w*)\b")


def raises_concern(customer: str, agent_before: str = "") -> bool:
    """The customer's turn holds a question or a doubt, which a salesperson answers before asking for anything."""
    if "?" in customer or cue_steps.ASKED.search(customer):
        return True
    cues = read_cues(customer, agent_before)
    return bool(cues.asks or cues.soft_no or CONCERN.search(canon(customer)))

