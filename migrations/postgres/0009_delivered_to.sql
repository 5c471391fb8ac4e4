-- Recipients the smarthost already took a message for, in attempts that did not reach every
-- recipient (the others were refused for now): later attempts go to the others only, so that
-- none of them gets the message twice. A JSON array of addresses, like `envelope_to`.
ALTER TABLE messages ADD COLUMN delivered_to text NOT NULL DEFAULT '[]';
